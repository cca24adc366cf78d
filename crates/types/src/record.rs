//! Device data records (issue 5): the wire format a device publishes and the gateway, the ledger
//! and an owner read, and the per-stream hash-chain checker they share.
//!
//! A record is a **tagged COSE_Sign1** (RFC 9052 §4.2, tag 18) by the device's Alias key, in
//! exactly one encoding (CDDL in `crates/device/README.md`):
//!
//! ```text
//! 18([ h'A10126' / h'A10127',   ; protected {1: -7 (ES256)} or {1: -8 (EdDSA)}, nothing else
//!      {},                      ; unprotected: empty
//!      bstr .cbor RecordBody,   ; payload
//!      bstr .size 64 ])         ; r ‖ s (ES256, low-S) or R ‖ S (Ed25519)
//! RecordBody = [ "chipledger/record/v1", device: bstr .size 20, stream: tstr, seq: uint,
//!                prev: bstr .size 32, timestamp_ms: uint, epoch: uint, payload: bstr ]
//! ```
//!
//! The signature is the standard COSE one over `Sig_structure = ["Signature1", protected, h'',
//! body]`, so any COSE library verifies a record; the tag string inside the body is the
//! domain separation. The **record hash** is SHA-256 over these exact bytes (the whole tagged
//! COSE_Sign1, [`record_hash`]); since only one encoding is accepted ([`parse_sign1`] rejects
//! any other header layout, tag or length form), the hash identifies the record.
//!
//! This module holds no signature code (the `device` crate signs and verifies); it frames,
//! encodes and decodes, and [`ChainState`] classifies a verified record against its chain.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::cbor::{DecodeError, Decoder, Encoder, Limits};
use crate::device_tx::DeviceId;
use crate::limits::{
    CHAIN_GAPS_TRACKED, CHAIN_WINDOW_RECORDS, MAX_RECORD_BYTES, MAX_RECORD_PAYLOAD_BYTES, MAX_STREAM_BYTES,
};

/// Domain-separation tag: the first element of every [`RecordBody`](Record) array.
pub const TAG_RECORD_V1: &str = "chipledger/record/v1";
/// The reserved stream on which a device publishes its per-epoch key-wrap messages (payload: a
/// COSE_Encrypt to the owner). Names starting with `_` are reserved for chipledger.
pub const STREAM_EPOCH_KEYS: &str = "_epoch-keys";
/// CBOR tag of COSE_Sign1.
pub const COSE_SIGN1_TAG: u8 = 18;
/// Length of a record signature (ES256 `r ‖ s`, Ed25519 `R ‖ S`).
pub const SIGNATURE_BYTES: usize = 64;

/// Decoding limits of a record body.
pub const RECORD_LIMITS: Limits = Limits {
    input_bytes_max: MAX_RECORD_BYTES,
    string_bytes_max: MAX_RECORD_PAYLOAD_BYTES,
    array_items_max: 8,
    depth_max: 1,
};

/// The signature algorithm of a record, from its protected header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordAlg {
    /// ECDSA P-256 with SHA-256, COSE alg -7.
    Es256,
    /// Ed25519, COSE alg -8.
    EdDsa,
}

impl RecordAlg {
    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        match self {
            RecordAlg::Es256 => -7,
            RecordAlg::EdDsa => -8,
        }
    }

    /// The protected header bucket, exactly as encoded: `{1: alg}`.
    pub fn protected_header(self) -> [u8; 3] {
        match self {
            RecordAlg::Es256 => [0xa1, 0x01, 0x26],
            RecordAlg::EdDsa => [0xa1, 0x01, 0x27],
        }
    }

    fn from_protected(bytes: &[u8]) -> Option<Self> {
        [RecordAlg::Es256, RecordAlg::EdDsa]
            .into_iter()
            .find(|alg| alg.protected_header() == bytes)
    }
}

/// SHA-256 of a record's bytes (the whole tagged COSE_Sign1); all zero = "no previous record".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RecordHash(pub [u8; 32]);

impl RecordHash {
    /// The `prev` of a stream's first record.
    pub const ZERO: RecordHash = RecordHash([0; 32]);
}

impl core::fmt::Display for RecordHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The record hash of `signed` (the exact tagged COSE_Sign1 bytes a device emitted).
pub fn record_hash(signed: &[u8]) -> RecordHash {
    RecordHash(Sha256::digest(signed).into())
}

/// One record's content (what the COSE_Sign1 payload encodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The device (DICE id of its DeviceID key).
    pub device: DeviceId,
    /// The stream within the device (`temperature`, `door-events`, [`STREAM_EPOCH_KEYS`]).
    pub stream: String,
    /// Position in the (device, stream) chain: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// Hash of the record with `seq - 1` in the same stream; [`RecordHash::ZERO`] for seq 1.
    pub prev: RecordHash,
    /// Device clock at creation, Unix milliseconds (self-reported, not trusted for ordering).
    pub timestamp_ms: u64,
    /// Encryption epoch of the payload's data key.
    pub epoch: u32,
    /// COSE_Encrypt0 (data streams) or COSE_Encrypt (the epoch-key stream) bytes.
    pub payload: Vec<u8>,
}

/// Why a record was refused (framing, content, or — from the device crate — its signature).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("record is {len} bytes; the limit is {max} (MAX_RECORD_BYTES)")]
    TooLarge { len: usize, max: usize },
    #[error("record is not a chipledger COSE_Sign1: {0}")]
    Framing(&'static str),
    #[error("record protected header is not {{1: -7}} (ES256) or {{1: -8}} (EdDSA)")]
    UnsupportedAlgorithm,
    #[error("record body does not decode: {0}")]
    Body(DecodeError),
    #[error("record field {field} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: &'static str },
    #[error("record is signed with {record:?} but the device key is {key:?}")]
    AlgorithmMismatch { record: RecordAlg, key: RecordAlg },
    #[error("ES256 signature is not in low-S form (malleated copy of a record)")]
    HighS,
    #[error("record signature does not verify under the device's Alias key")]
    BadSignature,
}

impl From<DecodeError> for RecordError {
    fn from(e: DecodeError) -> Self {
        RecordError::Body(e)
    }
}

/// Checks a stream name: 1..=[`MAX_STREAM_BYTES`] of ASCII `[A-Za-z0-9._-]`.
pub fn check_stream(stream: &str) -> Result<(), RecordError> {
    let bad = |reason| {
        Err(RecordError::InvalidField {
            field: "stream",
            reason,
        })
    };
    if stream.is_empty() || stream.len() > MAX_STREAM_BYTES {
        return bad("must be 1..=MAX_STREAM_BYTES bytes");
    }
    if !stream.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return bad("may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

impl Record {
    /// Checks the fields' own rules: stream name (`_…` reserved), seq ≥ 1, `prev` zero exactly
    /// for seq 1, payload size, and payload kind by its CBOR tag: COSE_Encrypt0 (16) on data
    /// streams, COSE_Encrypt (96) on [`STREAM_EPOCH_KEYS`] (contents are checked by the owner).
    pub fn validate(&self) -> Result<(), RecordError> {
        let bad = |field, reason| Err(RecordError::InvalidField { field, reason });
        check_stream(&self.stream)?;
        if self.seq == 0 {
            return bad("seq", "starts at 1");
        }
        if (self.seq == 1) != (self.prev == RecordHash::ZERO) {
            return bad("prev", "must be all zero exactly when seq is 1");
        }
        if self.payload.len() > MAX_RECORD_PAYLOAD_BYTES {
            return bad("payload", "longer than MAX_RECORD_PAYLOAD_BYTES");
        }
        let epoch_keys = self.stream == STREAM_EPOCH_KEYS;
        if self.stream.starts_with('_') && !epoch_keys {
            return bad("stream", "names starting with '_' are reserved");
        }
        match (epoch_keys, self.payload.as_slice()) {
            (false, [0xd0, ..]) | (true, [0xd8, 0x60, ..]) => Ok(()),
            (false, _) => bad("payload", "must be a tagged COSE_Encrypt0 (CBOR tag 16)"),
            (true, _) => bad(
                "payload",
                "must be a tagged COSE_Encrypt (CBOR tag 96) on the epoch-key stream",
            ),
        }
    }

    /// The body's canonical CBOR (the COSE_Sign1 payload).
    pub fn encode_body(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(8)
            .text(TAG_RECORD_V1)
            .bytes(&self.device.0)
            .text(&self.stream)
            .uint(self.seq)
            .bytes(&self.prev.0)
            .uint(self.timestamp_ms)
            .uint(u64::from(self.epoch))
            .bytes(&self.payload);
        e.into_bytes()
    }

    /// Decodes and validates a body (strict canonical CBOR, [`RECORD_LIMITS`]).
    pub fn decode_body(body: &[u8]) -> Result<Record, RecordError> {
        let mut d = Decoder::new(body, RECORD_LIMITS)?;
        d.array_of(8)?;
        if d.text()? != TAG_RECORD_V1 {
            return Err(RecordError::InvalidField {
                field: "tag",
                reason: "is not chipledger/record/v1",
            });
        }
        let record = Record {
            device: DeviceId(d.fixed()?),
            stream: d.string()?,
            seq: d.uint()?,
            prev: RecordHash(d.fixed()?),
            timestamp_ms: d.uint()?,
            epoch: d.u32()?,
            payload: d.bytes()?.to_vec(),
        };
        d.end();
        d.finish()?;
        record.validate()?;
        Ok(record)
    }
}

/// `Sig_structure` (RFC 9052 §4.4) of a record: `["Signature1", protected, h'', body]`.
pub fn sig_structure(alg: RecordAlg, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(4)
        .text("Signature1")
        .bytes(&alg.protected_header())
        .bytes(&[])
        .bytes(body);
    e.into_bytes()
}

/// The tagged COSE_Sign1 of a record: the only encoding [`parse_sign1`] accepts.
pub fn assemble_sign1(alg: RecordAlg, body: &[u8], signature: &[u8; SIGNATURE_BYTES]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&[0xc0 | COSE_SIGN1_TAG]) // tag 18 fits the initial byte
        .array(4)
        .bytes(&alg.protected_header())
        .raw(&[0xa0]) // empty unprotected map
        .bytes(body)
        .bytes(signature);
    e.into_bytes()
}

/// The parts of a record's COSE_Sign1, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sign1Parts<'a> {
    pub alg: RecordAlg,
    pub body: &'a [u8],
    pub signature: [u8; SIGNATURE_BYTES],
}

/// Splits a record's bytes into algorithm, body and signature, accepting only the layout of
/// [`assemble_sign1`]: tag 18, protected `{1: -7}` / `{1: -8}`, empty unprotected map,
/// canonical lengths, nothing after the signature. Bounded by [`MAX_RECORD_BYTES`].
pub fn parse_sign1(signed: &[u8]) -> Result<Sign1Parts<'_>, RecordError> {
    if signed.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            len: signed.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let framing = RecordError::Framing;
    let rest = match signed {
        [0xd2, 0x84, rest @ ..] => rest,
        [0xd2, ..] => return Err(framing("not a 4-element COSE_Sign1 array")),
        [0x84, ..] => return Err(framing("untagged; records are tagged COSE_Sign1 (18)")),
        _ => return Err(framing("not tagged COSE_Sign1 (18)")),
    };
    let mut d = Decoder::new(rest, RECORD_LIMITS)?;
    let alg = RecordAlg::from_protected(d.bytes()?).ok_or(RecordError::UnsupportedAlgorithm)?;
    let pos = d.position();
    if rest.get(pos) != Some(&0xa0) {
        return Err(framing("unprotected header must be an empty map"));
    }
    let mut d = Decoder::new(&rest[pos + 1..], RECORD_LIMITS)?;
    let body = d.bytes()?;
    let signature = d.fixed::<SIGNATURE_BYTES>()?;
    d.finish()?;
    Ok(Sign1Parts { alg, body, signature })
}

/// What [`ChainState::check`] found wrong with a record (already signature-verified) relative
/// to its (device, stream) chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainAnomaly {
    /// Records `expected..got` never arrived. The record itself is valid and **was accepted**:
    /// the chain head moved to it and the missing range is remembered.
    #[error("gap: expected seq {expected}, got {got} ({} records missing)", got - expected)]
    Gap { expected: u64, got: u64 },
    /// The very record already accepted (same seq, same hash), e.g. a QoS 1 redelivery.
    #[error("duplicate of accepted record seq {seq}")]
    Duplicate { seq: u64 },
    /// Two different records claim position `seq`: the device signed conflicting histories.
    /// `conflicting` is the other record's hash, or — when a record's `prev` names a record we
    /// did not accept — that `prev`.
    #[error("fork at seq {seq}: accepted {accepted}, conflicting {conflicting}")]
    Fork {
        seq: u64,
        accepted: RecordHash,
        conflicting: RecordHash,
    },
    /// An old seq (≤ head) that is neither remembered nor missing: a replay of an old record.
    #[error("replay: seq {seq} is at or behind the head {head}")]
    Replay { seq: u64, head: u64 },
    /// A record from a remembered gap arriving late; not linked into the chain (its seq is now
    /// no longer missing).
    #[error("out of order: seq {seq} arrived after the head {head} (it was missing)")]
    OutOfOrder { seq: u64, head: u64 },
}

/// The state of one (device, stream) chain: head, recent hashes, missing ranges. Pure logic
/// (no clock, no I/O), shared by the gateway and the simulation; bounded by
/// [`CHAIN_WINDOW_RECORDS`] and [`CHAIN_GAPS_TRACKED`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainState {
    head_seq: u64,
    head_hash: RecordHash,
    /// Recent accepted (seq, hash), ascending seq, at most `CHAIN_WINDOW_RECORDS`.
    recent: VecDeque<(u64, RecordHash)>,
    /// Missing seq ranges `[first, last]`, ascending, at most `CHAIN_GAPS_TRACKED`.
    missing: VecDeque<(u64, u64)>,
}

impl ChainState {
    /// An empty chain (no record yet; the next must be seq 1 with a zero `prev`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes a chain from a durable head (e.g. after a gateway restart).
    pub fn resume(head_seq: u64, head_hash: RecordHash) -> Self {
        let mut s = Self {
            head_seq,
            head_hash,
            ..Self::default()
        };
        if head_seq > 0 {
            s.recent.push_back((head_seq, head_hash));
        }
        s
    }

    /// Seq of the last accepted record (0 = none).
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// Hash of the last accepted record ([`RecordHash::ZERO`] = none).
    pub fn head_hash(&self) -> RecordHash {
        self.head_hash
    }

    /// Classifies `record` (whose bytes hash to `hash`) and, when it extends the chain, makes
    /// it the head. `Ok` = the next record, linked to the head. `Err(Gap)` also advances the
    /// head (see [`ChainAnomaly::Gap`]); every other error leaves the chain as it was, except
    /// that an out-of-order arrival is struck from the missing ranges.
    pub fn check(&mut self, record: &Record, hash: RecordHash) -> Result<(), ChainAnomaly> {
        let seq = record.seq;
        match self.head_seq.checked_add(1) {
            Some(next) if seq == next => {
                if record.prev != self.head_hash {
                    return Err(ChainAnomaly::Fork {
                        seq: self.head_seq,
                        accepted: self.head_hash,
                        conflicting: record.prev,
                    });
                }
                self.advance(seq, hash);
                Ok(())
            }
            Some(next) if seq > next => {
                self.remember_gap(next, seq - 1);
                self.advance(seq, hash);
                Err(ChainAnomaly::Gap {
                    expected: next,
                    got: seq,
                })
            }
            _ => self.classify_old(seq, hash),
        }
    }

    fn classify_old(&mut self, seq: u64, hash: RecordHash) -> Result<(), ChainAnomaly> {
        let head = self.head_seq;
        if let Some(&(_, accepted)) = self.recent.iter().find(|(s, _)| *s == seq) {
            return Err(if accepted == hash {
                ChainAnomaly::Duplicate { seq }
            } else {
                ChainAnomaly::Fork {
                    seq,
                    accepted,
                    conflicting: hash,
                }
            });
        }
        if self.strike_missing(seq) {
            return Err(ChainAnomaly::OutOfOrder { seq, head });
        }
        Err(ChainAnomaly::Replay { seq, head })
    }

    fn advance(&mut self, seq: u64, hash: RecordHash) {
        self.head_seq = seq;
        self.head_hash = hash;
        if self.recent.len() == CHAIN_WINDOW_RECORDS {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, hash));
    }

    fn remember_gap(&mut self, first: u64, last: u64) {
        if self.missing.len() == CHAIN_GAPS_TRACKED {
            self.missing.pop_front();
        }
        self.missing.push_back((first, last));
    }

    /// Removes `seq` from the missing ranges; false when it was not missing.
    fn strike_missing(&mut self, seq: u64) -> bool {
        let Some(i) = self.missing.iter().position(|&(a, b)| (a..=b).contains(&seq)) else {
            return false;
        };
        let (a, b) = self.missing[i];
        match (seq == a, seq == b) {
            (true, true) => {
                self.missing.remove(i);
            }
            (true, false) => self.missing[i].0 = seq + 1,
            (false, true) => self.missing[i].1 = seq - 1,
            (false, false) => {
                self.missing[i].1 = seq - 1;
                self.missing.insert(i + 1, (seq + 1, b));
                if self.missing.len() > CHAIN_GAPS_TRACKED {
                    self.missing.pop_front();
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, prev: RecordHash) -> Record {
        Record {
            device: DeviceId([0x11; 20]),
            stream: "temperature".into(),
            seq,
            prev,
            timestamp_ms: 1_764_000_000_000,
            epoch: 3,
            payload: alloc::vec![0xd0, 0x83, 0x40, 0xa0, 0x41, 0x00],
        }
    }

    /// Frozen: a change to the body layout shows here (and in the device crate's record bytes).
    const FROZEN_BODY: &str = concat!(
        "88",
        "74",
        "636869706c65646765722f7265636f72642f7631", // "chipledger/record/v1"
        "54",
        "1111111111111111111111111111111111111111", // device
        "6b",
        "74656d7065726174757265", // "temperature"
        "01",                     // seq
        "5820",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "1b",
        "0000019ab697e800", // timestamp_ms
        "03",               // epoch
        "46",
        "d08340a04100", // payload
    );

    #[test]
    fn body_encoding_is_frozen_and_round_trips() {
        let r = record(1, RecordHash::ZERO);
        assert_eq!(hex::encode(r.encode_body()), FROZEN_BODY);
        assert_eq!(Record::decode_body(&r.encode_body()).unwrap(), r);
    }

    #[test]
    fn sign1_framing_round_trips_and_is_the_only_accepted_layout() {
        let body = record(1, RecordHash::ZERO).encode_body();
        for alg in [RecordAlg::Es256, RecordAlg::EdDsa] {
            let signed = assemble_sign1(alg, &body, &[7; 64]);
            assert_eq!(
                &signed[..6],
                &[0xd2, 0x84, 0x43, 0xa1, 0x01, (-1 - alg.cose_id()) as u8 | 0x20]
            );
            let parts = parse_sign1(&signed).unwrap();
            assert_eq!((parts.alg, parts.body, parts.signature), (alg, &body[..], [7; 64]));
            for cut in 0..signed.len() {
                assert!(parse_sign1(&signed[..cut]).is_err(), "{cut}");
            }
            let mut trailing = signed.clone();
            trailing.push(0);
            assert!(parse_sign1(&trailing).is_err());
        }
        let signed = assemble_sign1(RecordAlg::Es256, &body, &[7; 64]);
        assert!(
            matches!(parse_sign1(&signed[1..]), Err(RecordError::Framing(_))),
            "untagged"
        );
        let mut es384 = signed.clone();
        es384[5] = 0x38; // {1: -35}: not a supported algorithm (and not canonical here anyway)
        assert_eq!(parse_sign1(&es384), Err(RecordError::UnsupportedAlgorithm));
        let mut unprotected = signed.clone();
        unprotected[6] = 0xa1;
        assert!(parse_sign1(&unprotected).is_err());
        let big = alloc::vec![0u8; MAX_RECORD_BYTES + 1];
        assert!(matches!(parse_sign1(&big), Err(RecordError::TooLarge { .. })));
    }

    #[test]
    fn field_rules_are_typed_errors() {
        let cases: [(Record, &str); 8] = [
            (
                Record {
                    stream: "_other".into(),
                    ..record(1, RecordHash::ZERO)
                },
                "stream",
            ),
            (
                Record {
                    payload: alloc::vec![0x83, 0x40],
                    ..record(1, RecordHash::ZERO)
                },
                "payload",
            ),
            (
                Record {
                    stream: STREAM_EPOCH_KEYS.into(),
                    ..record(1, RecordHash::ZERO)
                },
                "payload",
            ),
            (record(0, RecordHash::ZERO), "seq"),
            (record(1, RecordHash([1; 32])), "prev"),
            (record(2, RecordHash::ZERO), "prev"),
            (
                Record {
                    stream: "a/b".into(),
                    ..record(1, RecordHash::ZERO)
                },
                "stream",
            ),
            (
                Record {
                    stream: "x".repeat(MAX_STREAM_BYTES + 1),
                    ..record(1, RecordHash::ZERO)
                },
                "stream",
            ),
        ];
        for (r, field) in cases {
            let err = Record::decode_body(&r.encode_body()).unwrap_err();
            assert!(
                matches!(err, RecordError::InvalidField { field: f, .. } if f == field),
                "{err:?}"
            );
        }
        assert_eq!(check_stream(STREAM_EPOCH_KEYS), Ok(()));
    }

    #[test]
    fn every_body_truncation_and_bit_flip_is_rejected_or_decodes_differently() {
        let r = record(5, RecordHash([9; 32]));
        let body = r.encode_body();
        for cut in 0..body.len() {
            assert!(Record::decode_body(&body[..cut]).is_err());
        }
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut bad = body.clone();
                bad[i] ^= 1 << bit;
                if let Ok(other) = Record::decode_body(&bad) {
                    assert_ne!(other, r, "{i}/{bit}");
                }
            }
        }
    }

    fn h(n: u8) -> RecordHash {
        RecordHash([n; 32])
    }

    /// One chain fed record by record; each row: (seq, prev, hash, expected outcome).
    #[test]
    fn chain_checker_classifies_every_anomaly() {
        type Row = (u64, RecordHash, RecordHash, Result<(), ChainAnomaly>);
        let rows: [Row; 12] = [
            (1, RecordHash::ZERO, h(1), Ok(())),
            (2, h(1), h(2), Ok(())),
            (2, h(1), h(2), Err(ChainAnomaly::Duplicate { seq: 2 })),
            (
                2,
                h(1),
                h(22),
                Err(ChainAnomaly::Fork {
                    seq: 2,
                    accepted: h(2),
                    conflicting: h(22),
                }),
            ),
            (
                3,
                h(99),
                h(3),
                Err(ChainAnomaly::Fork {
                    seq: 2,
                    accepted: h(2),
                    conflicting: h(99),
                }),
            ),
            (3, h(2), h(3), Ok(())),
            (7, h(6), h(7), Err(ChainAnomaly::Gap { expected: 4, got: 7 })),
            (8, h(7), h(8), Ok(())),
            (5, h(4), h(5), Err(ChainAnomaly::OutOfOrder { seq: 5, head: 8 })),
            (5, h(4), h(5), Err(ChainAnomaly::Replay { seq: 5, head: 8 })),
            (
                1,
                RecordHash::ZERO,
                h(111),
                Err(ChainAnomaly::Fork {
                    seq: 1,
                    accepted: h(1),
                    conflicting: h(111),
                }),
            ),
            (9, h(8), h(9), Ok(())),
        ];
        let mut chain = ChainState::new();
        for (i, (seq, prev, hash, want)) in rows.into_iter().enumerate() {
            let r = record(seq, prev);
            assert_eq!(chain.check(&r, hash), want, "row {i}");
        }
        assert_eq!((chain.head_seq(), chain.head_hash()), (9, h(9)));
    }

    #[test]
    fn replay_beyond_the_window_and_resume() {
        let mut chain = ChainState::new();
        let mut prev = RecordHash::ZERO;
        for seq in 1..=(CHAIN_WINDOW_RECORDS as u64 + 10) {
            chain.check(&record(seq, prev), h(seq as u8)).unwrap();
            prev = h(seq as u8);
        }
        let err = chain.check(&record(1, RecordHash::ZERO), h(1)).unwrap_err();
        assert!(matches!(err, ChainAnomaly::Replay { seq: 1, .. }));

        let mut resumed = ChainState::resume(chain.head_seq(), chain.head_hash());
        let next = record(chain.head_seq() + 1, chain.head_hash());
        assert_eq!(resumed.check(&next, h(200)), Ok(()));
        assert_eq!(
            resumed.check(&next, h(200)),
            Err(ChainAnomaly::Duplicate { seq: next.seq })
        );
    }

    #[test]
    fn extreme_seqs_do_not_overflow() {
        let mut chain = ChainState::new();
        let last = record(u64::MAX, h(1));
        assert_eq!(
            chain.check(&last, h(2)),
            Err(ChainAnomaly::Gap {
                expected: 1,
                got: u64::MAX
            })
        );
        assert_eq!(chain.check(&last, h(2)), Err(ChainAnomaly::Duplicate { seq: u64::MAX }));
        assert!(matches!(chain.check(&last, h(3)), Err(ChainAnomaly::Fork { .. })));
        assert!(matches!(
            chain.check(&record(1, RecordHash::ZERO), h(4)),
            Err(ChainAnomaly::OutOfOrder { .. })
        ));
    }

    #[test]
    fn gap_bookkeeping_stays_bounded() {
        let mut chain = ChainState::new();
        let mut seq = 1;
        chain.check(&record(1, RecordHash::ZERO), h(1)).unwrap();
        for _ in 0..(CHAIN_GAPS_TRACKED * 2) {
            seq += 3;
            let r = record(seq, h(0));
            assert!(matches!(chain.check(&r, h(2)), Err(ChainAnomaly::Gap { .. })));
        }
        assert_eq!(chain.missing.len(), CHAIN_GAPS_TRACKED);
        // Splitting a range in the middle at capacity keeps the bound.
        let (a, _) = *chain.missing.back().unwrap();
        assert!(matches!(
            chain.check(&record(a + 1, h(0)), h(3)),
            Err(ChainAnomaly::OutOfOrder { .. })
        ));
        assert!(chain.missing.len() <= CHAIN_GAPS_TRACKED);
    }
}
