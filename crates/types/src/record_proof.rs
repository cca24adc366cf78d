//! Proof of one device record (issue 5): that these exact record bytes were committed by a
//! gateway's batch, and that the batch's `CommitBatch` transaction is in the ledger's log under
//! a checkpoint cosigned by a quorum of validators. Verifiable offline with nothing but the
//! validators' note keys, the log origin and the quorum.
//!
//! The chain of links a [`RecordProof`] carries, each checked by [`verify_record_proof`]:
//!
//! ```text
//! record bytes ──SHA-256──► record hash ──RFC 9162 inclusion (leaf = 0x00 ‖ hash)──► batch root
//! batch root == CommitBatch.root of the signed tx (same gateway, batch seq, record count)
//! tx bytes ──RFC 9162 inclusion (leaf = 0x00 ‖ tx)──► log root of a checkpoint with ≥ quorum
//!                                                     valid signatures of known validator keys
//! ```
//!
//! What the proof does **not** check: the record's own COSE signature (that needs the device's
//! key; the gateway verified it before accepting the record, and the ledger states the chain's
//! trust level — see [`ProvenRecord::chain_trust`]), and the transaction's signature (only
//! transactions that applied — signature and rules checked by every validator — enter a block
//! and so the log; inclusion under a final checkpoint implies it). Decryption is the owner's
//! business (`chipledger_device::seal`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::cbor::DecodeError;
use crate::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use crate::data_tx::{CommitBatch, TrustLevel};
use crate::device_tx::DeviceId;
use crate::limits::MAX_BATCH_RECORDS;
use crate::merkle::{Hash, MerkleError, hash_leaf, verify_inclusion};
use crate::note::{NoteLimits, VerifierKey};
use crate::record::{Record, RecordError, RecordHash, parse_sign1, record_hash};
use crate::state_proof::state_extension;
use crate::tx::{Payload, SignedTx, TxHash};

/// Where a record sits in its gateway batch: the batch tree's leaf `leaf_index` of
/// `size` leaves, and the RFC 9162 audit path to `root` (leaf's sibling first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInclusion {
    pub gateway: String,
    pub seq: u64,
    pub root: Hash,
    pub leaf_index: u64,
    pub size: u64,
    pub path: Vec<Hash>,
}

/// Where a batch's `CommitBatch` transaction sits in the log: leaf `leaf_index` of the tree of
/// `log_size` leaves that `checkpoint` (a C2SP signed note, verbatim) commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxInclusion {
    /// The encoded `SignedTx` (the log leaf input).
    pub tx: Vec<u8>,
    pub leaf_index: u64,
    pub log_size: u64,
    pub path: Vec<Hash>,
    pub checkpoint: String,
}

/// Everything needed to prove one record offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordProof {
    /// The record exactly as the device emitted it (tagged COSE_Sign1).
    pub record: Vec<u8>,
    pub batch: BatchInclusion,
    pub log: TxInclusion,
}

/// What a valid [`RecordProof`] establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenRecord {
    pub device: DeviceId,
    pub stream: String,
    pub seq: u64,
    pub hash: RecordHash,
    /// The decoded record (payload still encrypted).
    pub record: Record,
    pub gateway: String,
    pub batch_seq: u64,
    /// The organisation that signed the `CommitBatch` (the gateway's operator).
    pub operator: String,
    pub tx: TxHash,
    /// The lowest trust level the batch states for the record's chain (device, stream), which
    /// the ledger checked against its registry. It covers the chain's head-moving records in
    /// the batch; `None` when the chain has no head in the batch (a late, gap-filling record).
    pub chain_trust: Option<TrustLevel>,
    pub log_index: u64,
    pub log_size: u64,
    /// Block height of the checkpoint (its `chipledger-state` line), if it has one.
    pub checkpoint_height: Option<u64>,
    /// Distinct known validators whose signatures on the checkpoint verified.
    pub signers: usize,
}

/// Which link of a [`RecordProof`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProofError {
    #[error("the record is not a chipledger record: {0}")]
    Record(RecordError),
    #[error("batch size {size} is outside 1..={max} (MAX_BATCH_RECORDS)")]
    BatchSize { size: u64, max: usize },
    #[error("the record is not leaf {index} of batch {gateway}/{seq} with the stated root: {source}")]
    NotInBatch {
        gateway: String,
        seq: u64,
        index: u64,
        source: MerkleError,
    },
    #[error("the batch transaction does not decode: {0}")]
    Tx(DecodeError),
    #[error("the batch transaction is a '{kind}', not a CommitBatch")]
    NotCommitBatch { kind: &'static str },
    #[error("the CommitBatch states {field} {stated}, the proof claims {claimed}")]
    BatchMismatch {
        field: &'static str,
        stated: String,
        claimed: String,
    },
    #[error("quorum {quorum} is not between 1 and the {keys} known validator keys")]
    InvalidQuorum { quorum: usize, keys: usize },
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    #[error("the checkpoint has {valid} valid validator signatures; {quorum} needed")]
    BelowQuorum { valid: usize, quorum: usize },
    #[error("the proof is for a log of {proof} leaves but the checkpoint covers {checkpoint}")]
    LogSizeMismatch { proof: u64, checkpoint: u64 },
    #[error("the batch transaction is not leaf {index} of the checkpoint's log: {source}")]
    NotInLog { index: u64, source: MerkleError },
}

/// Verifies every link of `proof` (see the module docs): the record is in the batch, the batch
/// is the one the signed `CommitBatch` transaction states, and the transaction is in the log
/// under a checkpoint of `origin` signed by at least `quorum` distinct keys of `known`.
pub fn verify_record_proof(
    proof: &RecordProof,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> Result<ProvenRecord, RecordProofError> {
    if quorum == 0 || quorum > known.len() {
        return Err(RecordProofError::InvalidQuorum {
            quorum,
            keys: known.len(),
        });
    }
    let mut proven = check_record_proof_links(proof)?;
    let signed = open_checkpoint(proof.log.checkpoint.as_bytes(), origin, known, &NoteLimits::default())
        .map_err(RecordProofError::Checkpoint)?;
    let valid = signed.note.verified.len();
    if valid < quorum {
        return Err(RecordProofError::BelowQuorum { valid, quorum });
    }
    check_log_inclusion(proof, &signed.checkpoint)?;
    proven.signers = valid;
    Ok(proven)
}

/// Every link of `proof` **except the checkpoint's signatures**: for a producer (the gateway)
/// refusing to serve a broken proof. Never enough for a client: use [`verify_record_proof`].
/// The result has `signers == 0`.
pub fn check_record_proof_links(proof: &RecordProof) -> Result<ProvenRecord, RecordProofError> {
    let (record, hash) = decode_record(&proof.record)?;
    check_batch_inclusion(&proof.batch, &hash)?;
    let (batch, operator) = decode_commit_batch(&proof.log.tx)?;
    check_batch_matches(&proof.batch, &batch)?;
    let note = crate::note::Note::parse(proof.log.checkpoint.as_bytes(), &NoteLimits::default())
        .map_err(|e| RecordProofError::Checkpoint(CheckpointError::Note(e)))?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(RecordProofError::Checkpoint)?;
    check_log_inclusion(proof, &checkpoint)?;
    let chain_trust = batch
        .heads
        .iter()
        .find(|h| h.device == record.device && h.stream == record.stream)
        .map(|h| h.trust);
    Ok(ProvenRecord {
        device: record.device,
        stream: record.stream.clone(),
        seq: record.seq,
        hash,
        gateway: batch.gateway,
        batch_seq: batch.batch_seq,
        operator,
        tx: TxHash::of(&proof.log.tx),
        chain_trust,
        log_index: proof.log.leaf_index,
        log_size: proof.log.log_size,
        checkpoint_height: state_extension(&checkpoint).map(|(height, _)| height),
        signers: 0,
        record,
    })
}

/// Framing and body of the record (bounded by `MAX_RECORD_BYTES`), and its hash.
fn decode_record(bytes: &[u8]) -> Result<(Record, RecordHash), RecordProofError> {
    let parts = parse_sign1(bytes).map_err(RecordProofError::Record)?;
    let record = Record::decode_body(parts.body).map_err(RecordProofError::Record)?;
    Ok((record, record_hash(bytes)))
}

fn check_batch_inclusion(batch: &BatchInclusion, hash: &RecordHash) -> Result<(), RecordProofError> {
    if batch.size == 0 || batch.size > MAX_BATCH_RECORDS as u64 {
        return Err(RecordProofError::BatchSize {
            size: batch.size,
            max: MAX_BATCH_RECORDS,
        });
    }
    verify_inclusion(
        &hash_leaf(&hash.0),
        batch.leaf_index,
        batch.size,
        &batch.path,
        &batch.root,
    )
    .map_err(|source| RecordProofError::NotInBatch {
        gateway: batch.gateway.clone(),
        seq: batch.seq,
        index: batch.leaf_index,
        source,
    })
}

/// The `CommitBatch` payload of an encoded transaction (transaction limits) and its signer.
fn decode_commit_batch(tx: &[u8]) -> Result<(CommitBatch, String), RecordProofError> {
    let signed = SignedTx::from_bytes(tx).map_err(RecordProofError::Tx)?;
    match signed.body.payload {
        Payload::CommitBatch(batch) => Ok((batch, signed.body.org)),
        other => Err(RecordProofError::NotCommitBatch { kind: other.kind() }),
    }
}

fn check_batch_matches(claimed: &BatchInclusion, stated: &CommitBatch) -> Result<(), RecordProofError> {
    let mismatch =
        |field, stated: String, claimed: String| Err(RecordProofError::BatchMismatch { field, stated, claimed });
    if stated.gateway != claimed.gateway {
        return mismatch("gateway", stated.gateway.clone(), claimed.gateway.clone());
    }
    if stated.batch_seq != claimed.seq {
        return mismatch("batch seq", stated.batch_seq.to_string(), claimed.seq.to_string());
    }
    if stated.root != claimed.root {
        return mismatch("root", hex::encode(stated.root), hex::encode(claimed.root));
    }
    if u64::from(stated.record_count) != claimed.size {
        return mismatch(
            "record count",
            stated.record_count.to_string(),
            claimed.size.to_string(),
        );
    }
    Ok(())
}

fn check_log_inclusion(proof: &RecordProof, checkpoint: &Checkpoint) -> Result<(), RecordProofError> {
    let log = &proof.log;
    if log.log_size != checkpoint.size {
        return Err(RecordProofError::LogSizeMismatch {
            proof: log.log_size,
            checkpoint: checkpoint.size,
        });
    }
    verify_inclusion(
        &hash_leaf(&log.tx),
        log.leaf_index,
        checkpoint.size,
        &log.path,
        &checkpoint.root,
    )
    .map_err(|source| RecordProofError::NotInLog {
        index: log.leaf_index,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Encode;
    use crate::data_tx::{BatchHead, RegisterGateway, batch_root};
    use crate::keys::SigningKey;
    use crate::merkle::{MemoryStore, inclusion_proof};
    use crate::note::{SIG_TYPE_ED25519, SignerKey, sign_note};
    use crate::record::{RecordAlg, assemble_sign1};
    use crate::state_proof::state_extension_line;
    use crate::tx::TxBody;
    use alloc::vec;
    use alloc::vec::Vec;

    const ORIGIN: &str = "chipledger.example/test";
    const GATEWAY: &str = "gw-1";
    const BATCH_SEQ: u64 = 7;
    /// The proven record's position in its batch of five.
    const LEAF: u64 = 2;
    const QUORUM: usize = 3;

    fn record(seq: u64) -> Vec<u8> {
        let r = Record {
            device: DeviceId([1; 20]),
            stream: "temp".into(),
            seq,
            prev: RecordHash([seq as u8; 32]),
            timestamp_ms: 1_000 + seq,
            epoch: 1,
            payload: vec![0xd0, 0x83, 0x40, 0xa0, 0x40],
        };
        // The signature is not checked by the proof (see the module docs): any 64 bytes frame.
        assemble_sign1(RecordAlg::EdDsa, &r.encode_body(), &[seq as u8; 64])
    }

    fn signers() -> Vec<SignerKey> {
        (0..4u8)
            .map(|i| SignerKey::from_seed(&alloc::format!("v{i}"), SIG_TYPE_ED25519, &[i + 1; 32]).unwrap())
            .collect()
    }

    fn known() -> Vec<VerifierKey> {
        signers().iter().map(|s| s.verifier().clone()).collect()
    }

    fn signed_tx(payload: Payload) -> Vec<u8> {
        let key = SigningKey::ed25519_from_seed(&[9; 32]);
        let body = TxBody {
            chain_id: "test".into(),
            org: "ops".into(),
            key_id: key.public_key().id(),
            seq: 1,
            expiry_height: 100,
            payload,
        };
        SignedTx::sign(body, &key).to_cbor()
    }

    fn commit(root: Hash, record_count: u32) -> Payload {
        Payload::CommitBatch(CommitBatch {
            gateway: GATEWAY.into(),
            batch_seq: BATCH_SEQ,
            root,
            record_count,
            first_timestamp_ms: 1_001,
            last_timestamp_ms: 1_005,
            heads: vec![BatchHead {
                device: DeviceId([1; 20]),
                stream: "temp".into(),
                seq: 5,
                hash: record_hash(&record(5)).0,
                records: 5,
                trust: TrustLevel::Registered,
            }],
        })
    }

    /// A log of `[other, tx, other]` under a checkpoint signed by `signed_by` of the 4 keys.
    fn log_proof(tx: Vec<u8>, signed_by: &[usize]) -> TxInclusion {
        let leaves = [b"before".to_vec(), tx.clone(), b"after".to_vec()];
        let tree = MemoryStore::from_leaves(&leaves);
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: 3,
            root: tree.root(3).unwrap(),
            extensions: vec![state_extension_line(42, &[0; 32])],
        }
        .to_text()
        .unwrap();
        let all = signers();
        let keys: Vec<&SignerKey> = signed_by.iter().map(|i| &all[*i]).collect();
        TxInclusion {
            tx,
            leaf_index: 1,
            log_size: 3,
            path: inclusion_proof(&tree, 1, 3).unwrap(),
            checkpoint: sign_note(&text, &keys, 0).unwrap(),
        }
    }

    /// A valid proof of record seq 3, leaf 2 of a batch of five.
    fn proof_with(tx_payload: impl FnOnce(Hash) -> Payload, signed_by: &[usize]) -> RecordProof {
        let hashes: Vec<Hash> = (1..=5).map(|s| record_hash(&record(s)).0).collect();
        let root = batch_root(&hashes);
        let tree = MemoryStore::from_leaves(&hashes);
        RecordProof {
            record: record(LEAF + 1),
            batch: BatchInclusion {
                gateway: GATEWAY.into(),
                seq: BATCH_SEQ,
                root,
                leaf_index: LEAF,
                size: 5,
                path: inclusion_proof(&tree, LEAF, 5).unwrap(),
            },
            log: log_proof(signed_tx(tx_payload(root)), signed_by),
        }
    }

    fn valid() -> RecordProof {
        proof_with(|root| commit(root, 5), &[0, 1, 2, 3])
    }

    fn verify(p: &RecordProof) -> Result<ProvenRecord, RecordProofError> {
        verify_record_proof(p, ORIGIN, &known(), QUORUM)
    }

    #[test]
    fn a_valid_proof_names_the_record_batch_and_checkpoint() {
        let p = valid();
        let proven = verify(&p).unwrap();
        assert_eq!(proven.device, DeviceId([1; 20]));
        assert_eq!((proven.stream.as_str(), proven.seq), ("temp", 3));
        assert_eq!(proven.hash, record_hash(&record(3)));
        assert_eq!((proven.gateway.as_str(), proven.batch_seq), (GATEWAY, BATCH_SEQ));
        assert_eq!(proven.operator, "ops");
        assert_eq!(proven.tx, TxHash::of(&p.log.tx));
        assert_eq!(proven.chain_trust, Some(TrustLevel::Registered));
        assert_eq!((proven.log_index, proven.log_size), (1, 3));
        assert_eq!(proven.checkpoint_height, Some(42));
        assert_eq!(proven.signers, 4);
        assert_eq!(proven.record.epoch, 1);
        // Exactly a quorum is enough.
        let three = proof_with(|root| commit(root, 5), &[0, 2, 3]);
        assert_eq!(verify(&three).unwrap().signers, 3);
    }

    fn flip(bytes: &mut [u8], at: usize) {
        bytes[at] ^= 0x01;
    }

    /// Each tampered link fails with its own error.
    #[test]
    fn tampering_with_any_link_is_caught() {
        type Tamper = fn(&mut RecordProof);
        type Expect = fn(&RecordProofError) -> bool;
        let cases: Vec<(&str, Tamper, Expect)> = vec![
            (
                "record payload byte",
                |p| {
                    let at = p.record.len() - 70; // inside the body, before the signature
                    flip(&mut p.record, at)
                },
                |e| matches!(e, RecordProofError::NotInBatch { .. } | RecordProofError::Record(_)),
            ),
            (
                "record signature byte",
                |p| {
                    let at = p.record.len() - 1;
                    flip(&mut p.record, at)
                },
                |e| matches!(e, RecordProofError::NotInBatch { .. }),
            ),
            (
                "record framing",
                |p| p.record[0] = 0x84,
                |e| matches!(e, RecordProofError::Record(_)),
            ),
            (
                "another record of the batch",
                |p| p.record = record(4),
                |e| matches!(e, RecordProofError::NotInBatch { .. }),
            ),
            (
                "batch audit path",
                |p| flip(&mut p.batch.path[0], 0),
                |e| matches!(e, RecordProofError::NotInBatch { .. }),
            ),
            (
                "batch audit path too short",
                |p| {
                    p.batch.path.pop();
                },
                |e| {
                    matches!(
                        e,
                        RecordProofError::NotInBatch {
                            source: MerkleError::WrongProofLength { .. },
                            ..
                        }
                    )
                },
            ),
            (
                "leaf index",
                |p| p.batch.leaf_index = 1,
                |e| matches!(e, RecordProofError::NotInBatch { .. }),
            ),
            (
                "batch root",
                |p| flip(&mut p.batch.root, 31),
                |e| matches!(e, RecordProofError::NotInBatch { .. }),
            ),
            (
                // Index 2 of 6 has the same audit path shape as of 5: only the tx binds the size.
                "batch size",
                |p| p.batch.size = 6,
                |e| {
                    matches!(
                        e,
                        RecordProofError::BatchMismatch {
                            field: "record count",
                            ..
                        }
                    )
                },
            ),
            (
                "batch size zero",
                |p| p.batch.size = 0,
                |e| matches!(e, RecordProofError::BatchSize { .. }),
            ),
            (
                "gateway",
                |p| p.batch.gateway = "gw-2".into(),
                |e| matches!(e, RecordProofError::BatchMismatch { field: "gateway", .. }),
            ),
            (
                "batch seq",
                |p| p.batch.seq = 8,
                |e| matches!(e, RecordProofError::BatchMismatch { field: "batch seq", .. }),
            ),
            (
                "tx signature byte",
                |p| {
                    let at = p.log.tx.len() - 1;
                    flip(&mut p.log.tx, at)
                },
                |e| matches!(e, RecordProofError::NotInLog { .. }),
            ),
            (
                "tx truncated",
                |p| {
                    p.log.tx.pop();
                },
                |e| matches!(e, RecordProofError::Tx(_)),
            ),
            (
                "log audit path",
                |p| flip(&mut p.log.path[1], 5),
                |e| matches!(e, RecordProofError::NotInLog { .. }),
            ),
            (
                "log leaf index",
                |p| p.log.leaf_index = 0,
                |e| matches!(e, RecordProofError::NotInLog { .. }),
            ),
            (
                "log size",
                |p| p.log.log_size = 4,
                |e| {
                    matches!(
                        e,
                        RecordProofError::LogSizeMismatch {
                            proof: 4,
                            checkpoint: 3
                        }
                    )
                },
            ),
            (
                "checkpoint signature",
                |p| {
                    // The first signature line's base64 (key id ‖ signature): change one character.
                    let line_start = p.log.checkpoint.find("\n\n").unwrap() + 2;
                    let space = line_start + p.log.checkpoint[line_start..].find(' ').unwrap();
                    let sig_at = space + 1 + p.log.checkpoint[space + 1..].find(' ').unwrap() + 20;
                    let c = if &p.log.checkpoint[sig_at..=sig_at] == "A" {
                        "B"
                    } else {
                        "A"
                    };
                    p.log.checkpoint.replace_range(sig_at..=sig_at, c);
                },
                |e| matches!(e, RecordProofError::Checkpoint(_)),
            ),
            (
                "checkpoint body (another root)",
                |p| {
                    let other = Checkpoint::parse(
                        &crate::note::Note::parse(p.log.checkpoint.as_bytes(), &NoteLimits::default())
                            .unwrap()
                            .text,
                    )
                    .unwrap();
                    let forged = Checkpoint { root: [7; 32], ..other }.to_text().unwrap();
                    let sigs = p.log.checkpoint.split_once("\n\n").unwrap().1.to_string();
                    p.log.checkpoint = alloc::format!("{forged}\n{sigs}");
                },
                |e| matches!(e, RecordProofError::NotInLog { .. } | RecordProofError::Checkpoint(_)),
            ),
        ];
        for (name, tamper, expected) in cases {
            let mut p = valid();
            tamper(&mut p);
            let err = verify(&p).expect_err(name);
            assert!(expected(&err), "{name}: unexpected error {err}");
        }
    }

    #[test]
    fn the_transaction_must_be_this_batch() {
        let cases: Vec<(&str, RecordProof, &str)> = vec![
            (
                "another root",
                proof_with(|_| commit([3; 32], 5), &[0, 1, 2, 3]),
                "root",
            ),
            (
                "another record count",
                proof_with(|root| commit(root, 6), &[0, 1, 2, 3]),
                "record count",
            ),
        ];
        for (name, p, field) in cases {
            match verify(&p) {
                Err(RecordProofError::BatchMismatch { field: f, .. }) => assert_eq!(f, field, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let not_a_batch = proof_with(
            |_| Payload::RegisterGateway(RegisterGateway { name: GATEWAY.into() }),
            &[0, 1, 2, 3],
        );
        assert_eq!(
            verify(&not_a_batch),
            Err(RecordProofError::NotCommitBatch {
                kind: Payload::RegisterGateway(RegisterGateway { name: GATEWAY.into() }).kind()
            })
        );
    }

    #[test]
    fn the_checkpoint_needs_a_quorum_of_known_keys_and_the_origin() {
        let two = proof_with(|root| commit(root, 5), &[1, 3]);
        assert_eq!(verify(&two), Err(RecordProofError::BelowQuorum { valid: 2, quorum: 3 }));
        // Signatures from keys the verifier does not know count for nothing.
        let strangers = [SignerKey::from_seed("v0", SIG_TYPE_ED25519, &[77; 32]).unwrap()];
        let mut p = valid();
        let text = crate::note::Note::parse(p.log.checkpoint.as_bytes(), &NoteLimits::default())
            .unwrap()
            .text;
        p.log.checkpoint = sign_note(&text, &[&strangers[0]], 0).unwrap();
        assert!(matches!(verify(&p), Err(RecordProofError::Checkpoint(_))));
        assert!(matches!(
            verify_record_proof(&valid(), "chipledger.example/other", &known(), QUORUM),
            Err(RecordProofError::Checkpoint(CheckpointError::WrongOrigin { .. }))
        ));
        for quorum in [0, 5] {
            assert_eq!(
                verify_record_proof(&valid(), ORIGIN, &known(), quorum),
                Err(RecordProofError::InvalidQuorum { quorum, keys: 4 })
            );
        }
    }

    #[test]
    fn links_without_signatures_are_the_producer_check() {
        let unsigned = check_record_proof_links(&proof_with(|root| commit(root, 5), &[1])).unwrap();
        assert_eq!(unsigned.signers, 0);
        let mut p = valid();
        p.batch.path.clear();
        assert!(check_record_proof_links(&p).is_err());
    }
}
