//! Data at source (issue 5), ledger side: the payloads by which gateways commit batches of
//! device records, report chain anomalies and record rebirth requests, and the records a
//! client proves against the state root.
//!
//! **What the ledger sees.** Never a record: a gateway verifies each COSE_Sign1 record, checks
//! its hash chain, stores it (ciphertext + signature) and commits, per batch, the RFC 9162
//! Merkle root over the batch's *record hashes* (SHA-256 of each COSE_Sign1 encoding, in batch
//! order; each 32-byte record hash is one leaf input, so its leaf hash is
//! `SHA-256(0x00 ‖ record hash)`, see [`batch_root`]) plus, for every device+stream the batch
//! touches, the chain's new head ([`BatchHead`]).
//!
//! **Gateways.** A gateway is a name registered by an organisation holding the Operator role
//! ([`RegisterGateway`]); the name is global and belongs to that organisation, and only it may
//! commit batches, report anomalies or request rebirths in the gateway's name (its transactions
//! are signed by the organisation's keys like any other). Batch numbers are contiguous per
//! gateway starting at 1, so a replayed batch is refused and none is skipped.
//!
//! **Heads.** A batch lists its heads sorted by (device, stream) with no pair twice, at most
//! [`MAX_BATCH_HEADS`] of them (so a gateway with more chains in one time slice splits the
//! batch). A head's `records` counts the batch's records that extend that chain; their sum is
//! at most the batch's `record_count` (≤ [`MAX_BATCH_RECORDS`]) because a late record filling
//! a gap (`out_of_order` in [`crate::record::ChainAnomaly`]) is stored and committed in the
//! root but moves no head. `trust` is the lowest [`TrustLevel`] of that chain's records in the
//! batch. Record seqs start at 1 ([`crate::record::Record::seq`]).
//!
//! **Names.** Streams and Sparkplug-style edge node ids appear in MQTT topics, state keys and
//! URLs, so [`check_topic_name`] restricts them to 1..=[`MAX_STREAM_BYTES`] of
//! `[A-Za-z0-9._-]` (the record format's rule).
//!
//! Payload structs follow their tag positionally in the [`crate::tx::Payload`] array
//! ([`Fields`]); every list and string is bounded by a limit in [`crate::limits`]. The stored
//! records' encodings are frozen by the tests below.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list, encode_list};
use crate::device_tx::{DeviceId, Fields};
use crate::firmware_tx::decode_bounded_text;
use crate::limits::*;
use crate::merkle::{Frontier, Hash};
use crate::tx::{TxHash, check_name};

fn invalid(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Invalid { what, why }
}

fn too_long(what: &'static str, len: usize, max: usize) -> DecodeError {
    DecodeError::TooLong {
        what,
        len: len as u64,
        max,
    }
}

/// The RFC 9162 Merkle root of a batch: one leaf per record hash, in batch order. The gateway,
/// the API and offline verifiers all compute it here.
pub fn batch_root(record_hashes: &[Hash]) -> Hash {
    let mut tree = Frontier::new();
    for h in record_hashes {
        tree.append(h);
    }
    tree.root()
}

/// Check a stream name or edge node id with the record format's rule
/// ([`crate::record::check_stream`]: 1..=[`MAX_STREAM_BYTES`] bytes of `[A-Za-z0-9._-]`, safe
/// in MQTT topic levels, state keys and URL paths).
pub fn check_topic_name(name: &str) -> Result<(), DecodeError> {
    crate::record::check_stream(name).map_err(|_| {
        invalid(
            "stream or edge node name",
            "must be 1-64 chars of A-Z, a-z, 0-9, '.', '_', '-'",
        )
    })
}

fn decode_topic_name(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_topic_name(&s)?;
    Ok(s)
}

fn decode_gateway(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

/// How far a record's key is trusted (issue 5): the gateway states the lowest level of a
/// chain's records in a batch, the ledger checks it against the device registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TrustLevel {
    /// Self-reported: a key the registry does not know.
    SelfReported = 0,
    /// The registered device's key.
    Registered = 1,
    /// A key backed by verified DICE evidence for the currently attested firmware.
    Attested = 2,
}

impl TrustLevel {
    pub const ALL: [TrustLevel; 3] = [TrustLevel::SelfReported, TrustLevel::Registered, TrustLevel::Attested];
    /// The stable name used by the API and in messages.
    pub fn name(self) -> &'static str {
        match self {
            TrustLevel::SelfReported => "self-reported",
            TrustLevel::Registered => "registered",
            TrustLevel::Attested => "attested",
        }
    }
}

impl Encode for TrustLevel {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for TrustLevel {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        TrustLevel::ALL
            .into_iter()
            .find(|t| *t as u64 == v)
            .ok_or(DecodeError::UnknownVariant {
                what: "trust level",
                value: v,
            })
    }
}

/// What a gateway found wrong with a device's record chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AnomalyKind {
    /// Sequence numbers were skipped (`expected_seq` is the first missing one).
    Gap = 1,
    /// A record arrived again (same seq, same hash).
    Duplicate = 2,
    /// Two different records with the same seq (evidence: both hashes).
    Fork = 3,
    /// An old record was replayed after the chain moved on.
    Replay = 4,
    /// The COSE_Sign1 signature did not verify.
    BadSignature = 5,
    /// The device is revoked on the ledger.
    RevokedDevice = 6,
    /// Oversized or undecodable record.
    Malformed = 7,
    /// A record whose previous-hash or seq does not follow the head it claims to extend.
    OutOfOrder = 8,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 8] = [
        AnomalyKind::Gap,
        AnomalyKind::Duplicate,
        AnomalyKind::Fork,
        AnomalyKind::Replay,
        AnomalyKind::BadSignature,
        AnomalyKind::RevokedDevice,
        AnomalyKind::Malformed,
        AnomalyKind::OutOfOrder,
    ];
    /// The stable name used by the API, the CLI and in messages.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Gap => "gap",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::Fork => "fork",
            AnomalyKind::Replay => "replay",
            AnomalyKind::BadSignature => "bad_signature",
            AnomalyKind::RevokedDevice => "revoked_device",
            AnomalyKind::Malformed => "malformed",
            AnomalyKind::OutOfOrder => "out_of_order",
        }
    }
    pub fn from_name(name: &str) -> Option<AnomalyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
    /// Fewest evidence hashes a report of this kind carries (a fork names both records).
    pub fn min_evidence(self) -> usize {
        match self {
            AnomalyKind::Fork => 2,
            AnomalyKind::Duplicate | AnomalyKind::Replay => 1,
            _ => 0,
        }
    }
}

impl Encode for AnomalyKind {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for AnomalyKind {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        AnomalyKind::ALL
            .into_iter()
            .find(|k| *k as u64 == v)
            .ok_or(DecodeError::UnknownVariant {
                what: "anomaly kind",
                value: v,
            })
    }
}

fn encode_hashes(e: &mut Encoder, hashes: &[Hash]) {
    e.array(hashes.len());
    for h in hashes {
        e.bytes(h);
    }
}

fn decode_hashes(d: &mut Decoder<'_>, max: usize) -> Result<Vec<Hash>, DecodeError> {
    let n = d.array()?;
    if n > max {
        return Err(too_long("evidence hashes", n, max));
    }
    let out = (0..n).map(|_| d.fixed()).collect::<Result<Vec<Hash>, _>>()?;
    d.end();
    Ok(out)
}

// ---- payloads --------------------------------------------------------------------------------

/// An Operator organisation registers a gateway name (global, owned by that organisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterGateway {
    pub name: String,
}

impl Fields for RegisterGateway {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.name);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RegisterGateway {
            name: decode_gateway(d)?,
        })
    }
}

/// One device+stream chain's new head in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHead {
    pub device: DeviceId,
    pub stream: String,
    /// Seq of the chain's last record in the batch (≥ 1).
    pub seq: u64,
    /// Record hash (SHA-256 of the COSE_Sign1) of that record.
    pub hash: Hash,
    /// How many of the batch's records belong to this chain (≥ 1).
    pub records: u32,
    /// The lowest trust level of this chain's records in the batch.
    pub trust: TrustLevel,
}

impl Encode for BatchHead {
    fn encode(&self, e: &mut Encoder) {
        e.array(6);
        self.device.encode(e);
        e.text(&self.stream)
            .uint(self.seq)
            .bytes(&self.hash)
            .uint(self.records as u64);
        self.trust.encode(e);
    }
}

impl Decode for BatchHead {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let h = BatchHead {
            device: DeviceId::decode(d)?,
            stream: decode_topic_name(d)?,
            seq: d.uint()?,
            hash: d.fixed()?,
            records: d.u32()?,
            trust: TrustLevel::decode(d)?,
        };
        d.end();
        if h.records == 0 || h.seq == 0 {
            return Err(invalid(
                "batch head",
                "names at least one record, and record seqs start at 1",
            ));
        }
        Ok(h)
    }
}

/// Heads sorted strictly by (device, stream): canonical, and no chain twice; they account for
/// at most the batch's records.
fn check_heads(heads: &[BatchHead], record_count: u32) -> Result<(), DecodeError> {
    let sorted = heads
        .windows(2)
        .all(|w| (w[0].device, w[0].stream.as_str()) < (w[1].device, w[1].stream.as_str()));
    if !sorted {
        return Err(invalid(
            "batch heads",
            "must be sorted by (device, stream) with no chain twice",
        ));
    }
    let sum: u64 = heads.iter().map(|h| h.records as u64).sum();
    if sum > record_count as u64 {
        return Err(invalid(
            "batch heads",
            "they count more records than the batch's record_count",
        ));
    }
    Ok(())
}

/// A gateway commits a batch of verified records: its Merkle root and each chain's new head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitBatch {
    pub gateway: String,
    /// Contiguous per gateway, from 1.
    pub batch_seq: u64,
    /// [`batch_root`] of the batch's record hashes.
    pub root: Hash,
    pub record_count: u32,
    /// Device timestamps of the batch's earliest and latest record (ms since the Unix epoch).
    pub first_timestamp_ms: u64,
    pub last_timestamp_ms: u64,
    pub heads: Vec<BatchHead>,
}

impl Fields for CommitBatch {
    const ARITY: usize = 7;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.gateway)
            .uint(self.batch_seq)
            .bytes(&self.root)
            .uint(self.record_count as u64)
            .uint(self.first_timestamp_ms)
            .uint(self.last_timestamp_ms);
        encode_list(e, &self.heads);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let p = CommitBatch {
            gateway: decode_gateway(d)?,
            batch_seq: d.uint()?,
            root: d.fixed()?,
            record_count: d.u32()?,
            first_timestamp_ms: d.uint()?,
            last_timestamp_ms: d.uint()?,
            heads: decode_list(d, MAX_BATCH_HEADS)?,
        };
        if p.batch_seq == 0 {
            return Err(invalid("batch seq", "batches are numbered from 1"));
        }
        if p.record_count == 0 || p.record_count as usize > MAX_BATCH_RECORDS {
            return Err(too_long("batch records", p.record_count as usize, MAX_BATCH_RECORDS));
        }
        if p.first_timestamp_ms > p.last_timestamp_ms {
            return Err(invalid(
                "batch timestamps",
                "first_timestamp_ms is after last_timestamp_ms",
            ));
        }
        check_heads(&p.heads, p.record_count)?;
        Ok(p)
    }
}

/// A gateway reports what it found wrong with a device's record chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportChainAnomaly {
    pub gateway: String,
    pub device: DeviceId,
    pub stream: String,
    pub kind: AnomalyKind,
    /// Seq of the offending record.
    pub seq: u64,
    /// The seq the gateway expected (gap, out-of-order), if any.
    pub expected_seq: Option<u64>,
    /// Hashes of the records involved (distinct; a fork needs both).
    pub evidence: Vec<Hash>,
    pub detail: String,
}

impl Fields for ReportChainAnomaly {
    const ARITY: usize = 8;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.gateway);
        self.device.encode(e);
        e.text(&self.stream);
        self.kind.encode(e);
        e.uint(self.seq);
        match self.expected_seq {
            Some(s) => e.uint(s),
            None => e.null(),
        };
        encode_hashes(e, &self.evidence);
        e.text(&self.detail);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let p = ReportChainAnomaly {
            gateway: decode_gateway(d)?,
            device: DeviceId::decode(d)?,
            stream: decode_topic_name(d)?,
            kind: AnomalyKind::decode(d)?,
            seq: d.uint()?,
            expected_seq: if d.null()? { None } else { Some(d.uint()?) },
            evidence: decode_hashes(d, MAX_ANOMALY_EVIDENCE)?,
            detail: decode_bounded_text(d, "detail", MAX_TEXT_BYTES)?,
        };
        if p.evidence.len() < p.kind.min_evidence() {
            return Err(invalid(
                "anomaly evidence",
                "a fork names both records, a duplicate or replay the record",
            ));
        }
        let mut sorted = p.evidence.clone();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("anomaly evidence", "lists a hash twice"));
        }
        Ok(p)
    }
}

/// A gateway asked an edge node to rebirth (Sparkplug B: after a sequence gap the host asks the
/// edge node to republish its birth), recorded against the device whose chain had the gap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRebirth {
    pub gateway: String,
    pub device: DeviceId,
    pub edge_node: String,
    pub reason: String,
}

impl Fields for RequestRebirth {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.gateway);
        self.device.encode(e);
        e.text(&self.edge_node).text(&self.reason);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RequestRebirth {
            gateway: decode_gateway(d)?,
            device: DeviceId::decode(d)?,
            edge_node: decode_topic_name(d)?,
            reason: decode_bounded_text(d, "reason", MAX_TEXT_BYTES)?,
        })
    }
}

// ---- records a client proves ---------------------------------------------------------------------

/// `data/batch/<gateway>/<seq>` → [`BatchRecord`].
pub fn batch_key(gateway: &str, seq: u64) -> Vec<u8> {
    format!("data/batch/{gateway}/{seq}").into_bytes()
}
/// `data/head/<hex device id>/<stream>` → [`ChainHead`].
pub fn head_key(device: &DeviceId, stream: &str) -> Vec<u8> {
    format!("data/head/{device}/{stream}").into_bytes()
}

/// A committed batch, as its `CommitBatch` stated it, with where it was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub gateway: String,
    pub seq: u64,
    /// The operator organisation that committed it.
    pub operator: String,
    pub root: Hash,
    pub record_count: u32,
    pub first_timestamp_ms: u64,
    pub last_timestamp_ms: u64,
    pub heads: Vec<BatchHead>,
    pub height: u64,
    /// The `CommitBatch` transaction (its log leaf proves the batch under a checkpoint).
    pub tx: TxHash,
}

impl BatchRecord {
    const ARITY: usize = 10;
}

impl Encode for BatchRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY)
            .text(&self.gateway)
            .uint(self.seq)
            .text(&self.operator)
            .bytes(&self.root)
            .uint(self.record_count as u64)
            .uint(self.first_timestamp_ms)
            .uint(self.last_timestamp_ms);
        encode_list(e, &self.heads);
        e.uint(self.height).bytes(&self.tx.0);
    }
}

impl Decode for BatchRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = BatchRecord {
            gateway: decode_gateway(d)?,
            seq: d.uint()?,
            operator: decode_gateway(d)?,
            root: d.fixed()?,
            record_count: d.u32()?,
            first_timestamp_ms: d.uint()?,
            last_timestamp_ms: d.uint()?,
            heads: decode_list(d, MAX_BATCH_HEADS)?,
            height: d.uint()?,
            tx: TxHash(d.fixed()?),
        };
        d.end();
        Ok(r)
    }
}

/// A device+stream chain's head as the ledger knows it: the last committed record and totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Hash,
    /// Trust level stated by the batch that set this head.
    pub trust: TrustLevel,
    /// Records committed on this chain, all batches together.
    pub records: u64,
    /// Seq numbers the chain advanced past without a committed record (gaps), all together.
    pub missing: u64,
    /// The batch that set this head.
    pub gateway: String,
    pub batch_seq: u64,
    pub height: u64,
}

impl ChainHead {
    const ARITY: usize = 8;
}

impl Encode for ChainHead {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY).uint(self.seq).bytes(&self.hash);
        self.trust.encode(e);
        e.uint(self.records)
            .uint(self.missing)
            .text(&self.gateway)
            .uint(self.batch_seq)
            .uint(self.height);
    }
}

impl Decode for ChainHead {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = ChainHead {
            seq: d.uint()?,
            hash: d.fixed()?,
            trust: TrustLevel::decode(d)?,
            records: d.uint()?,
            missing: d.uint()?,
            gateway: decode_gateway(d)?,
            batch_seq: d.uint()?,
            height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Limits;
    use crate::merkle::{hash_children, hash_leaf};
    use crate::tx::Payload;
    use alloc::vec;
    use sha2::{Digest, Sha256};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn rep(b: u8, n: usize) -> String {
        hex::encode(vec![b; n])
    }

    fn head(device: u8, stream: &str, seq: u64, records: u32) -> BatchHead {
        BatchHead {
            device: DeviceId([device; 20]),
            stream: stream.into(),
            seq,
            hash: [device; 32],
            records,
            trust: TrustLevel::Registered,
        }
    }

    fn batch(heads: Vec<BatchHead>) -> CommitBatch {
        CommitBatch {
            gateway: "gw-1".into(),
            batch_seq: 1,
            root: [9; 32],
            record_count: heads.iter().map(|h| h.records).sum(),
            first_timestamp_ms: 10,
            last_timestamp_ms: 20,
            heads,
        }
    }

    fn round_trip(p: Payload) -> Vec<u8> {
        let bytes = p.to_cbor();
        assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut at {cut}");
        }
        bytes
    }

    #[test]
    fn batch_root_is_rfc9162_over_record_hashes() {
        // RFC 9162 §2.1.1: MTH({}) = SHA-256(""), MTH({d0}) = SHA-256(0x00 ‖ d0),
        // MTH({d0, d1}) = SHA-256(0x01 ‖ MTH({d0}) ‖ MTH({d1})).
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(batch_root(&[]), empty);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let leaf_a: [u8; 32] = Sha256::digest([&[0u8][..], &a].concat()).into();
        assert_eq!(batch_root(&[a]), leaf_a);
        assert_eq!(hash_leaf(&a), leaf_a);
        let leaf_b: [u8; 32] = Sha256::digest([&[0u8][..], &b].concat()).into();
        let node: [u8; 32] = Sha256::digest([&[1u8][..], &leaf_a, &leaf_b].concat()).into();
        assert_eq!(batch_root(&[a, b]), node);
        assert_eq!(hash_children(&leaf_a, &leaf_b), node);
    }

    #[test]
    fn frozen_payload_encodings() {
        // [41, "gw-1", 1, h'09…', 1, 10, 20, [[h'01…', "temp", 5, h'01…', 1, 1]]]
        let p = Payload::CommitBatch(batch(vec![head(1, "temp", 5, 1)]));
        let want = format!(
            "88 1829 64{} 01 5820{} 01 0a 14 81 86 54{} 64{} 05 5820{} 01 01",
            hex::encode("gw-1"),
            rep(9, 32),
            rep(1, 20),
            hex::encode("temp"),
            rep(1, 32)
        );
        assert_eq!(round_trip(p), h(&want));
        // [40, "gw-1"]
        let g = Payload::RegisterGateway(RegisterGateway { name: "gw-1".into() });
        assert_eq!(round_trip(g), h(&format!("82 1828 64{}", hex::encode("gw-1"))));
        // [42, "gw-1", h'02…', "temp", 3, 12, null, [h'07…', h'08…'], "two records at 12"]
        let a = Payload::ReportChainAnomaly(ReportChainAnomaly {
            gateway: "gw-1".into(),
            device: DeviceId([2; 20]),
            stream: "temp".into(),
            kind: AnomalyKind::Fork,
            seq: 12,
            expected_seq: None,
            evidence: vec![[7; 32], [8; 32]],
            detail: "two records at 12".into(),
        });
        let want = format!(
            "89 182a 64{} 54{} 64{} 03 0c f6 82 5820{} 5820{} 71{}",
            hex::encode("gw-1"),
            rep(2, 20),
            hex::encode("temp"),
            rep(7, 32),
            rep(8, 32),
            hex::encode("two records at 12")
        );
        assert_eq!(round_trip(a), h(&want));
        round_trip(Payload::RequestRebirth(RequestRebirth {
            gateway: "gw-1".into(),
            device: DeviceId([2; 20]),
            edge_node: "edge_7".into(),
            reason: "gap at 12".into(),
        }));
    }

    #[test]
    fn frozen_records() {
        let head = ChainHead {
            seq: 5,
            hash: [1; 32],
            trust: TrustLevel::Attested,
            records: 6,
            missing: 0,
            gateway: "gw-1".into(),
            batch_seq: 2,
            height: 9,
        };
        let want = format!("88 05 5820{} 02 06 00 64{} 02 09", rep(1, 32), hex::encode("gw-1"));
        assert_eq!(head.to_cbor(), h(&want));
        assert_eq!(ChainHead::from_cbor(&h(&want), Limits::STATE).unwrap(), head);
        let b = batch(vec![self::head(1, "temp", 5, 1)]);
        let rec = BatchRecord {
            gateway: b.gateway,
            seq: 1,
            operator: "ops".into(),
            root: b.root,
            record_count: 1,
            first_timestamp_ms: 10,
            last_timestamp_ms: 20,
            heads: b.heads,
            height: 4,
            tx: TxHash([3; 32]),
        };
        let want = format!(
            "8a 64{} 01 63{} 5820{} 01 0a 14 81 86 54{} 64{} 05 5820{} 01 01 04 5820{}",
            hex::encode("gw-1"),
            hex::encode("ops"),
            rep(9, 32),
            rep(1, 20),
            hex::encode("temp"),
            rep(1, 32),
            rep(3, 32)
        );
        assert_eq!(rec.to_cbor(), h(&want));
        assert_eq!(BatchRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), rec);
        assert_eq!(batch_key("gw-1", 7), b"data/batch/gw-1/7".to_vec());
        assert_eq!(
            head_key(&DeviceId([0xcd; 20]), "temp"),
            format!("data/head/{}/temp", rep(0xcd, 20)).into_bytes()
        );
    }

    fn refused(p: CommitBatch) -> DecodeError {
        let p = Payload::CommitBatch(p);
        Payload::from_cbor(&p.to_cbor(), Limits::TX).expect_err("must be refused")
    }

    #[test]
    fn bad_batches_are_typed_errors() {
        let two = vec![head(1, "temp", 5, 2), head(2, "temp", 5, 1)];
        assert!(
            matches!(refused(batch(vec![])), DecodeError::TooLong { .. }),
            "no records"
        );
        let unsorted = vec![head(2, "temp", 5, 1), head(1, "temp", 5, 1)];
        assert!(matches!(refused(batch(unsorted)), DecodeError::Invalid { .. }));
        let twice = vec![head(1, "temp", 5, 1), head(1, "temp", 6, 1)];
        assert!(matches!(refused(batch(twice)), DecodeError::Invalid { .. }));
        let mut wrong_sum = batch(two.clone());
        wrong_sum.record_count = 2;
        assert!(matches!(refused(wrong_sum), DecodeError::Invalid { .. }));
        let mut zero_seq = batch(two.clone());
        zero_seq.batch_seq = 0;
        assert!(matches!(refused(zero_seq), DecodeError::Invalid { .. }));
        let mut backwards = batch(two.clone());
        backwards.first_timestamp_ms = 30;
        assert!(matches!(refused(backwards), DecodeError::Invalid { .. }));
        let mut too_many = batch(vec![head(1, "temp", 5, MAX_BATCH_RECORDS as u32 + 1)]);
        too_many.record_count = MAX_BATCH_RECORDS as u32 + 1;
        assert!(matches!(refused(too_many), DecodeError::TooLong { .. }));
        assert!(matches!(
            refused(batch(vec![head(1, "temp", 5, 0)])),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(
            refused(batch(vec![head(1, "temp", 0, 1)])),
            DecodeError::Invalid { .. }
        ));
        // Late records that move no head: counted in the root, in no head.
        let mut late = batch(vec![head(1, "temp", 5, 1)]);
        late.record_count = 3;
        let p = Payload::CommitBatch(late);
        assert!(Payload::from_cbor(&p.to_cbor(), Limits::TX).is_ok());
        for bad in ["", "a/b", "a+b", "#", "t emp", &"x".repeat(MAX_STREAM_BYTES + 1)] {
            assert!(
                refused(batch(vec![head(1, bad, 5, 1)])).to_string().contains("stream"),
                "{bad}"
            );
        }
        let heads: Vec<BatchHead> = (0..=MAX_BATCH_HEADS)
            .map(|i| head(1, &format!("s{i:04}"), 1, 1))
            .collect();
        assert!(matches!(refused(batch(heads)), DecodeError::TooLong { .. }));
        let mut bad_gw = batch(two);
        bad_gw.gateway = "GW".into();
        assert!(matches!(refused(bad_gw), DecodeError::Invalid { what: "name", .. }));
    }

    #[test]
    fn bad_anomaly_reports_are_typed_errors() {
        let report = |kind, evidence: Vec<Hash>| {
            Payload::ReportChainAnomaly(ReportChainAnomaly {
                gateway: "gw-1".into(),
                device: DeviceId([2; 20]),
                stream: "temp".into(),
                kind,
                seq: 12,
                expected_seq: Some(11),
                evidence,
                detail: String::new(),
            })
        };
        assert!(Payload::from_cbor(&report(AnomalyKind::Gap, vec![]).to_cbor(), Limits::TX).is_ok());
        for p in [
            report(AnomalyKind::Fork, vec![[1; 32]]),
            report(AnomalyKind::Fork, vec![[1; 32], [1; 32]]),
            report(AnomalyKind::Replay, vec![]),
            report(AnomalyKind::Gap, vec![[0; 32]; MAX_ANOMALY_EVIDENCE + 1]),
        ] {
            assert!(Payload::from_cbor(&p.to_cbor(), Limits::TX).is_err(), "{p:?}");
        }
        // Anomaly kind 9 does not exist.
        let bytes = report(AnomalyKind::Gap, vec![]).to_cbor();
        let kind_at = bytes.len() - 5; // …, 1, 12, 11, [], ""
        assert_eq!(bytes[kind_at], 0x01);
        let mut unknown = bytes.clone();
        unknown[kind_at] = 0x09;
        assert!(matches!(
            Payload::from_cbor(&unknown, Limits::TX),
            Err(DecodeError::UnknownVariant { .. })
        ));
        for k in AnomalyKind::ALL {
            assert_eq!(AnomalyKind::from_name(k.name()), Some(k));
        }
    }
}
