//! Public keys, signatures and key identifiers (Ed25519 and ES256 / P-256).
//!
//! Every signature in chipledger covers a domain-separation tag naming what it signs; the
//! message actually signed is `tag ‖ 0x00 ‖ body`, see [`signed_message`].

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder};

/// Domain-separation tag for transaction signatures.
pub const TAG_TX_V1: &str = "chipledger/tx/v1";
/// Domain-separation tag for block header hashes.
pub const TAG_BLOCK_V1: &str = "chipledger/block/v1";
/// Domain-separation tag for key identifiers.
pub const TAG_KEY_ID_V1: &str = "chipledger/key-id/v1";

const KIND_ED25519: u64 = 1;
const KIND_P256: u64 = 2;

/// Message bytes covered by a signature: `tag ‖ 0x00 ‖ body`.
pub fn signed_message(tag: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + 1 + body.len());
    m.extend_from_slice(tag.as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// A public key of an organisation, validator or device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PublicKey {
    /// Ed25519 public key (RFC 8032), 32 bytes.
    Ed25519([u8; 32]),
    /// P-256 public key, SEC1 compressed point (33 bytes); signatures are ES256.
    P256([u8; 33]),
}

/// A signature matching a [`PublicKey`] kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// Ed25519, 64 bytes.
    Ed25519([u8; 64]),
    /// ES256: r ‖ s, 32 bytes each (fixed-size, as in COSE).
    Es256([u8; 64]),
}

/// 32-byte identifier of a public key: SHA-256(tag ‖ 0x00 ‖ CBOR(key)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 32]);

/// Why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("public key bytes are not a valid {0} key")]
    BadKey(&'static str),
    #[error("signature algorithm does not match the key ({key} key, {sig} signature)")]
    AlgorithmMismatch { key: &'static str, sig: &'static str },
    #[error("signature bytes are malformed")]
    Malformed,
    #[error("signature does not verify")]
    Invalid,
}

impl PublicKey {
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::P256(_) => "ES256",
        }
    }

    pub fn id(&self) -> KeyId {
        let msg = signed_message(TAG_KEY_ID_V1, &self.to_cbor());
        KeyId(Sha256::digest(&msg).into())
    }

    /// Verify `sig` over `tag ‖ 0x00 ‖ body`.
    pub fn verify(&self, tag: &str, body: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        let msg = signed_message(tag, body);
        match (self, sig) {
            (PublicKey::Ed25519(k), Signature::Ed25519(s)) => {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(k).map_err(|_| SignatureError::BadKey("Ed25519"))?;
                let sig = ed25519_dalek::Signature::from_bytes(s);
                vk.verify_strict(&msg, &sig).map_err(|_| SignatureError::Invalid)
            }
            (PublicKey::P256(k), Signature::Es256(s)) => {
                use p256::ecdsa::signature::Verifier;
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(k).map_err(|_| SignatureError::BadKey("P-256"))?;
                let sig = p256::ecdsa::Signature::from_slice(s).map_err(|_| SignatureError::Malformed)?;
                vk.verify(&msg, &sig).map_err(|_| SignatureError::Invalid)
            }
            (k, s) => Err(SignatureError::AlgorithmMismatch {
                key: k.algorithm(),
                sig: s.algorithm(),
            }),
        }
    }
}

impl Signature {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Signature::Ed25519(_) => "Ed25519",
            Signature::Es256(_) => "ES256",
        }
    }
}

/// A private signing key (held by the CLI, a node or a test; never by the state machine).
#[derive(Clone)]
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SigningKey({:?})", self.public_key())
    }
}

impl SigningKey {
    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A P-256 key from its 32-byte scalar.
    pub fn p256_from_bytes(scalar: &[u8; 32]) -> Result<Self, SignatureError> {
        p256::ecdsa::SigningKey::from_slice(scalar)
            .map(SigningKey::P256)
            .map_err(|_| SignatureError::BadKey("P-256"))
    }

    /// The secret bytes (Ed25519 seed or P-256 scalar), for writing a key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        match self {
            SigningKey::Ed25519(k) => k.to_bytes(),
            SigningKey::P256(k) => k.to_bytes().into(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key().to_bytes()),
            SigningKey::P256(k) => {
                let point = k.verifying_key().to_sec1_point(true);
                let mut out = [0u8; 33];
                out.copy_from_slice(point.as_bytes());
                PublicKey::P256(out)
            }
        }
    }

    /// Sign `tag ‖ 0x00 ‖ body` (deterministic: RFC 8032 / RFC 6979).
    pub fn sign(&self, tag: &str, body: &[u8]) -> Signature {
        let msg = signed_message(tag, body);
        match self {
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                Signature::Ed25519(k.sign(&msg).to_bytes())
            }
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(&msg);
                let mut out = [0u8; 64];
                out.copy_from_slice(&sig.to_bytes());
                Signature::Es256(out)
            }
        }
    }
}

impl Encode for PublicKey {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        match self {
            PublicKey::Ed25519(k) => e.uint(KIND_ED25519).bytes(k),
            PublicKey::P256(k) => e.uint(KIND_P256).bytes(k),
        };
    }
}

impl Decode for PublicKey {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let key = match d.uint()? {
            KIND_ED25519 => PublicKey::Ed25519(d.fixed()?),
            KIND_P256 => PublicKey::P256(d.fixed()?),
            value => {
                return Err(DecodeError::UnknownVariant {
                    what: "key kind",
                    value,
                });
            }
        };
        d.end();
        Ok(key)
    }
}

impl Encode for Signature {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        match self {
            Signature::Ed25519(s) => e.uint(KIND_ED25519).bytes(s),
            Signature::Es256(s) => e.uint(KIND_P256).bytes(s),
        };
    }
}

impl Decode for Signature {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let sig = match d.uint()? {
            KIND_ED25519 => Signature::Ed25519(d.fixed()?),
            KIND_P256 => Signature::Es256(d.fixed()?),
            value => {
                return Err(DecodeError::UnknownVariant {
                    what: "signature kind",
                    value,
                });
            }
        };
        d.end();
        Ok(sig)
    }
}

impl Encode for KeyId {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(&self.0);
    }
}

impl Decode for KeyId {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.fixed().map(KeyId)
    }
}

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Text form of a public key: `ed25519:<hex>` or `p256:<hex>`.
impl core::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PublicKey::Ed25519(k) => write!(f, "ed25519:{}", hex::encode(k)),
            PublicKey::P256(k) => write!(f, "p256:{}", hex::encode(k)),
        }
    }
}

impl core::str::FromStr for PublicKey {
    type Err = SignatureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, hex_part) = s.split_once(':').ok_or(SignatureError::BadKey("text"))?;
        let bytes = hex::decode(hex_part).map_err(|_| SignatureError::BadKey("hex"))?;
        match kind {
            "ed25519" => bytes
                .try_into()
                .map(PublicKey::Ed25519)
                .map_err(|_| SignatureError::BadKey("Ed25519")),
            "p256" => bytes
                .try_into()
                .map(PublicKey::P256)
                .map_err(|_| SignatureError::BadKey("P-256")),
            _ => Err(SignatureError::BadKey("unknown kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_both_algorithms_and_domain_separation() {
        let keys = [
            SigningKey::ed25519_from_seed(&[7u8; 32]),
            SigningKey::p256_from_bytes(&[9u8; 32]).unwrap(),
        ];
        for k in keys {
            let pk = k.public_key();
            let sig = k.sign(TAG_TX_V1, b"hello");
            assert_eq!(pk.verify(TAG_TX_V1, b"hello", &sig), Ok(()));
            assert_eq!(pk.verify(TAG_TX_V1, b"hellO", &sig), Err(SignatureError::Invalid));
            assert_eq!(pk.verify(TAG_BLOCK_V1, b"hello", &sig), Err(SignatureError::Invalid));
            let rt = PublicKey::from_cbor(&pk.to_cbor(), crate::cbor::Limits::TX).unwrap();
            assert_eq!(rt, pk);
            assert_eq!(pk.to_string().parse::<PublicKey>().unwrap(), pk);
        }
    }

    #[test]
    fn mismatched_algorithm_is_typed() {
        let ed = SigningKey::ed25519_from_seed(&[1u8; 32]);
        let p = SigningKey::p256_from_bytes(&[2u8; 32]).unwrap();
        let sig = p.sign(TAG_TX_V1, b"x");
        assert!(matches!(
            ed.public_key().verify(TAG_TX_V1, b"x", &sig),
            Err(SignatureError::AlgorithmMismatch { .. })
        ));
    }
}
