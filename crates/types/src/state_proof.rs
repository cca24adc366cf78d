//! Verification of state proofs: the sparse-Merkle hashing of the authenticated state map, the
//! proof of a key's value (or absence) under a state root, and the checkpoint extension line
//! that binds a state root to a cosigned checkpoint. `no_std`: a device checks these offline.
//!
//! The map (built by the `state` crate) is a sparse Merkle tree keyed by SHA-256(key) with
//! single-leaf subtrees collapsed. Hashes: empty subtree = 32 zero bytes; leaf = SHA-256(0x00 ‖
//! key_hash ‖ value_hash); branch = SHA-256(0x01 ‖ left ‖ right), with value_hash =
//! SHA-256(value bytes).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder};
use crate::checkpoint::Checkpoint;

/// A node hash of the state map.
pub type Hash = [u8; 32];

/// Root of the empty map (and the hash of every empty subtree).
pub const EMPTY_ROOT: Hash = [0u8; 32];

/// Most siblings a proof can have: one per bit of a SHA-256 key hash.
pub const MAX_PROOF_SIBLINGS: usize = 256;

/// Largest state key carried in a [`ProvenRecord`].
pub const MAX_PROVEN_KEY_BYTES: usize = 1024;

/// Prefix of the checkpoint extension line that binds the state: `chipledger-state <height>
/// <base64 state root>`. C2SP tlog-checkpoint allows extension lines; clients that do not know
/// it ignore it, and those that do can check a state proof against a cosigned root.
pub const STATE_EXTENSION_PREFIX: &str = "chipledger-state";

/// SHA-256 of a state key: its position in the map.
pub fn key_hash(key: &[u8]) -> Hash {
    Sha256::digest(key).into()
}

/// SHA-256 of a state value: what the leaf commits to.
pub fn value_hash(value: &[u8]) -> Hash {
    Sha256::digest(value).into()
}

/// Hash of a leaf (key hash, value hash).
pub fn leaf_hash(key: &Hash, value: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(key);
    h.update(value);
    h.finalize().into()
}

/// Hash of a branch.
pub fn branch_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Bit `depth` of `key`, most significant first: false = left, true = right.
///
/// `depth` must be below 256 (a key hash has 256 bits); callers bound it.
pub fn key_bit(key: &Hash, depth: usize) -> bool {
    (key[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// Proof that a key has a given value hash, or no value, under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtProof {
    /// Sibling hashes from the root downwards.
    pub siblings: Vec<Hash>,
    /// The leaf met at the end of the path, if any (it may be another key's leaf, proving
    /// absence of the queried key).
    pub leaf: Option<(Hash, Hash)>,
}

/// Why a state proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("proof has {0} siblings, more than the 256 a path can have")]
    TooLong(usize),
    #[error("the proof's leaf is not on the queried key's path")]
    LeafOffPath,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("the proof is for state key {actual:?}, not the expected {expected:?}")]
    WrongKey { expected: String, actual: String },
}

/// Check that under `root`, `key_hash` maps to `value_hash` (None: is absent).
pub fn verify(root: &Hash, key_hash: &Hash, value_hash: Option<&Hash>, proof: &SmtProof) -> Result<(), ProofError> {
    let depth = proof.siblings.len();
    if depth > MAX_PROOF_SIBLINGS {
        return Err(ProofError::TooLong(depth));
    }
    let terminal = match (&proof.leaf, value_hash) {
        (Some((k, v)), Some(want)) if k == key_hash && v == want => leaf_hash(k, v),
        (Some((k, _)), _) if k == key_hash => return Err(ProofError::RootMismatch),
        (Some((k, v)), None) => {
            // Another key's leaf proves absence only if it sits on our path prefix.
            if (0..depth).any(|i| key_bit(k, i) != key_bit(key_hash, i)) {
                return Err(ProofError::LeafOffPath);
            }
            leaf_hash(k, v)
        }
        (None, None) => EMPTY_ROOT,
        _ => return Err(ProofError::RootMismatch),
    };
    let mut acc = terminal;
    for (i, sib) in proof.siblings.iter().enumerate().rev() {
        acc = if key_bit(key_hash, i) {
            branch_hash(sib, &acc)
        } else {
            branch_hash(&acc, sib)
        };
    }
    if &acc == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// A state record (or its absence) with its proof: what a device or an offline client checks
/// against a cosigned state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenRecord {
    /// The state key.
    pub key: Vec<u8>,
    /// The value bytes; `None` proves the key is absent.
    pub value: Option<Vec<u8>>,
    pub proof: SmtProof,
}

impl ProvenRecord {
    /// Check that this is a proof for `expected_key` under `root`; returns the proven value.
    pub fn verify(&self, root: &Hash, expected_key: &[u8]) -> Result<Option<&[u8]>, ProofError> {
        if self.key != expected_key {
            return Err(ProofError::WrongKey {
                expected: String::from_utf8_lossy(expected_key).into_owned(),
                actual: String::from_utf8_lossy(&self.key).into_owned(),
            });
        }
        let vh = self.value.as_deref().map(value_hash);
        verify(root, &key_hash(&self.key), vh.as_ref(), &self.proof)?;
        Ok(self.value.as_deref())
    }
}

/// CBOR: `[key: bytes, value: bytes / null, siblings: [bytes .size 32], leaf: [k, v] / null]`.
impl Encode for ProvenRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(4).bytes(&self.key);
        match &self.value {
            Some(v) => e.bytes(v),
            None => e.null(),
        };
        e.array(self.proof.siblings.len());
        for s in &self.proof.siblings {
            e.bytes(s);
        }
        match &self.proof.leaf {
            Some((k, v)) => e.array(2).bytes(k).bytes(v),
            None => e.null(),
        };
    }
}

impl Decode for ProvenRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let key = d.bytes()?;
        if key.len() > MAX_PROVEN_KEY_BYTES {
            return Err(DecodeError::TooLong {
                what: "state key",
                len: key.len() as u64,
                max: MAX_PROVEN_KEY_BYTES,
            });
        }
        let value = if d.null()? { None } else { Some(d.bytes()?.to_vec()) };
        let n = d.array()?;
        if n > MAX_PROOF_SIBLINGS {
            return Err(DecodeError::TooLong {
                what: "proof siblings",
                len: n as u64,
                max: MAX_PROOF_SIBLINGS,
            });
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(d.fixed()?);
        }
        d.end();
        let leaf = if d.null()? {
            None
        } else {
            d.array_of(2)?;
            let leaf = (d.fixed()?, d.fixed()?);
            d.end();
            Some(leaf)
        };
        d.end();
        Ok(ProvenRecord {
            key: key.to_vec(),
            value,
            proof: SmtProof { siblings, leaf },
        })
    }
}

/// The checkpoint extension line committing to the state root after block `height`.
pub fn state_extension_line(height: u64, root: &Hash) -> String {
    format!("{STATE_EXTENSION_PREFIX} {height} {}", BASE64.encode(root))
}

/// The (height, state root) a checkpoint body's state extension line commits to.
pub fn state_extension(cp: &Checkpoint) -> Option<(u64, Hash)> {
    cp.extensions.iter().find_map(|line| {
        let mut parts = line.split(' ');
        (parts.next()? == STATE_EXTENSION_PREFIX).then_some(())?;
        let height = crate::checkpoint::parse_decimal_u64(parts.next()?)?;
        let root = crate::checkpoint::parse_hash_b64(parts.next()?)?;
        parts.next().is_none().then_some((height, root))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Limits;

    fn h(i: u8) -> Hash {
        Sha256::digest([i]).into()
    }

    #[test]
    fn single_leaf_and_empty_maps() {
        let (k, v) = (key_hash(b"a"), value_hash(b"1"));
        let root = leaf_hash(&k, &v);
        let proof = SmtProof {
            siblings: Vec::new(),
            leaf: Some((k, v)),
        };
        assert_eq!(verify(&root, &k, Some(&v), &proof), Ok(()));
        // Absence of another key under the one-leaf root: the leaf sits on every path prefix.
        assert_eq!(verify(&root, &key_hash(b"b"), None, &proof), Ok(()));
        let empty = SmtProof {
            siblings: Vec::new(),
            leaf: None,
        };
        assert_eq!(verify(&EMPTY_ROOT, &k, None, &empty), Ok(()));
        assert_eq!(verify(&EMPTY_ROOT, &k, Some(&v), &empty), Err(ProofError::RootMismatch));
    }

    #[test]
    fn too_long_proof_is_rejected() {
        let proof = SmtProof {
            siblings: alloc::vec![EMPTY_ROOT; MAX_PROOF_SIBLINGS + 1],
            leaf: None,
        };
        assert_eq!(verify(&EMPTY_ROOT, &h(1), None, &proof), Err(ProofError::TooLong(257)));
    }

    #[test]
    fn proven_record_round_trips_and_checks_its_key() {
        let (k, v) = (key_hash(b"fw/x"), value_hash(b"val"));
        let rec = ProvenRecord {
            key: b"fw/x".to_vec(),
            value: Some(b"val".to_vec()),
            proof: SmtProof {
                siblings: alloc::vec![h(1), h(2)],
                leaf: Some((k, v)),
            },
        };
        let bytes = rec.to_cbor();
        assert_eq!(ProvenRecord::from_cbor(&bytes, Limits::STATE), Ok(rec.clone()));
        let root = if key_bit(&k, 1) {
            branch_hash(&h(2), &leaf_hash(&k, &v))
        } else {
            branch_hash(&leaf_hash(&k, &v), &h(2))
        };
        let root = if key_bit(&k, 0) {
            branch_hash(&h(1), &root)
        } else {
            branch_hash(&root, &h(1))
        };
        assert_eq!(rec.verify(&root, b"fw/x"), Ok(Some(&b"val"[..])));
        assert!(matches!(rec.verify(&root, b"fw/y"), Err(ProofError::WrongKey { .. })));
        assert_eq!(rec.verify(&h(9), b"fw/x"), Err(ProofError::RootMismatch));
    }

    #[test]
    fn state_extension_line_round_trips() {
        let cp = Checkpoint {
            origin: "o".into(),
            size: 1,
            root: h(0),
            extensions: alloc::vec![state_extension_line(42, &h(3))],
        };
        assert_eq!(state_extension(&cp), Some((42, h(3))));
        for bad in [
            "chipledger-state 42",
            "chipledger-state 042 AAAA",
            "chipledger-state x y z",
        ] {
            let cp = Checkpoint {
                extensions: alloc::vec![bad.into()],
                ..cp.clone()
            };
            assert_eq!(state_extension(&cp), None, "{bad}");
        }
    }
}
