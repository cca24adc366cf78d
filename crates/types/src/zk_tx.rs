//! Zero-knowledge range proofs (issue 6), ledger side: a device's signed commitment to one
//! reading, the payload that publishes a range proof over it, and the record the ledger keeps.
//!
//! **Reading commitment.** A device commits to a reading of one quantity in one of its records
//! and signs the commitment with its key: a COSE_Sign1 (ES256 or EdDSA, as the key) whose
//! payload is the canonical CBOR array [`ReadingCommitment::to_payload`]
//! `[TAG_READING_COMMITMENT_V1, device, stream, seq, record hash, quantity, commitment]`. The
//! tag makes the statement impossible to confuse with an EAT, a record or a transfer proof. The
//! commitment is a compressed Ristretto point (`chipledger_zk::commit`).
//!
//! **Publishing.** [`PublishRangeProof`] carries the signed statement, the bounds, the bit width
//! and the proof bytes; the ledger checks the device signature and the proof and stores a
//! [`RangeProofRecord`] at [`range_proof_key`] (`zk/proof/<tx hex>`). The per-device index is
//! the device's audit trail (entries of kind `range-proof`, `crate::audit`).
//!
//! **What is revealed:** the device, stream, seq, record hash, quantity name, commitment, bounds
//! and bit width, and that the value lies within the bounds; never the value (see
//! `crates/zk/README.md`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits};
use crate::data_tx::check_topic_name;
use crate::device_tx::{DeviceId, Fields};
use crate::limits::*;
use crate::merkle::Hash;
use crate::tx::{TxHash, check_name};

/// Domain-separation tag: the first element of a reading commitment's payload.
pub const TAG_READING_COMMITMENT_V1: &str = "chipledger/reading-commitment/v1";
/// Audit entry kind of a published range proof.
pub const AUDIT_KIND_RANGE_PROOF: &str = "range-proof";
/// Largest reading-commitment payload decoded, in bytes.
const MAX_READING_PAYLOAD_BYTES: usize = 512;

fn invalid(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Invalid { what, why }
}

fn bounded_bytes(d: &mut Decoder<'_>, what: &'static str, min: usize, max: usize) -> Result<Vec<u8>, DecodeError> {
    let b = d.bytes()?;
    if b.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: b.len() as u64,
            max,
        });
    }
    if b.len() < min {
        return Err(invalid(what, "is empty or too short"));
    }
    Ok(b.to_vec())
}

/// Check a quantity name: 1..=[`MAX_QUANTITY_BYTES`] of `[A-Za-z0-9._-]` (the stream rule).
pub fn check_quantity(name: &str) -> Result<(), DecodeError> {
    check_topic_name(name).map_err(|_| invalid("quantity", "must be 1-64 chars of A-Z, a-z, 0-9, '.', '_', '-'"))
}

fn decode_bits(d: &mut Decoder<'_>) -> Result<u8, DecodeError> {
    let v = d.uint()?;
    RANGE_PROOF_BITS
        .into_iter()
        .find(|b| u64::from(*b) == v)
        .ok_or(invalid("bits", "must be 8, 16, 32 or 64"))
}

/// What a device signs: its commitment to one reading of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingCommitment {
    pub device: DeviceId,
    pub stream: String,
    /// The record's seq in its chain (≥ 1).
    pub seq: u64,
    /// SHA-256 of the record's COSE_Sign1 encoding (what a batch commits).
    pub record_hash: Hash,
    /// Which reading of the record (`co2_ppm`).
    pub quantity: String,
    /// The Pedersen commitment to the reading (compressed Ristretto point).
    pub commitment: [u8; 32],
}

impl ReadingCommitment {
    const ARITY: usize = 7;

    /// The canonical CBOR payload the device signs.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(Self::ARITY).text(TAG_READING_COMMITMENT_V1);
        self.device.encode(&mut e);
        e.text(&self.stream)
            .uint(self.seq)
            .bytes(&self.record_hash)
            .text(&self.quantity)
            .bytes(&self.commitment);
        e.into_bytes()
    }

    /// Decode a payload made by [`ReadingCommitment::to_payload`]; another tag, extra fields,
    /// non-canonical CBOR or bad names are refused.
    pub fn from_payload(payload: &[u8]) -> Result<Self, DecodeError> {
        let limits = Limits {
            input_bytes_max: MAX_READING_PAYLOAD_BYTES,
            string_bytes_max: MAX_READING_PAYLOAD_BYTES,
            array_items_max: Self::ARITY,
            depth_max: 1,
        };
        let mut d = Decoder::new(payload, limits)?;
        d.array_of(Self::ARITY)?;
        if d.text()? != TAG_READING_COMMITMENT_V1 {
            return Err(invalid(
                "reading commitment",
                "payload tag is not chipledger/reading-commitment/v1",
            ));
        }
        let rc = ReadingCommitment {
            device: DeviceId::decode(&mut d)?,
            stream: d.string()?,
            seq: d.uint()?,
            record_hash: d.fixed()?,
            quantity: d.string()?,
            commitment: d.fixed()?,
        };
        d.end();
        d.finish()?;
        check_topic_name(&rc.stream)?;
        check_quantity(&rc.quantity)?;
        if rc.seq == 0 {
            return Err(invalid("reading commitment", "record seqs start at 1"));
        }
        Ok(rc)
    }
}

/// Publish a range proof over a device-signed reading commitment: `min ≤ value ≤ max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRangeProof {
    /// COSE_Sign1 by the device's key over a [`ReadingCommitment`] payload.
    pub statement: Vec<u8>,
    pub min: u64,
    pub max: u64,
    /// Bit width of the proof (8, 16, 32 or 64); `max − min` must fit in it.
    pub bits: u8,
    /// The aggregated Bulletproof (`chipledger_zk::prove_bounds`).
    pub proof: Vec<u8>,
}

impl Fields for PublishRangeProof {
    const ARITY: usize = 5;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.statement)
            .uint(self.min)
            .uint(self.max)
            .uint(u64::from(self.bits))
            .bytes(&self.proof);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(PublishRangeProof {
            statement: bounded_bytes(d, "reading statement", 1, MAX_READING_STATEMENT_BYTES)?,
            min: d.uint()?,
            max: d.uint()?,
            bits: decode_bits(d)?,
            proof: bounded_bytes(d, "range proof", 1, MAX_RANGE_PROOF_BYTES)?,
        })
    }
}

/// Which device key signed a reading commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StatementKey {
    /// The registered DeviceID key.
    DeviceId = 1,
    /// The Alias key of the device's currently attested firmware.
    Alias = 2,
}

impl StatementKey {
    /// The stable name used by the API.
    pub fn name(self) -> &'static str {
        match self {
            StatementKey::DeviceId => "device-id",
            StatementKey::Alias => "alias",
        }
    }
}

impl Encode for StatementKey {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for StatementKey {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.uint()? {
            1 => Ok(StatementKey::DeviceId),
            2 => Ok(StatementKey::Alias),
            value => Err(DecodeError::UnknownVariant {
                what: "statement key",
                value,
            }),
        }
    }
}

/// `zk/proof/<tx hex>` → [`RangeProofRecord`].
pub fn range_proof_key(tx: &TxHash) -> Vec<u8> {
    format!("zk/proof/{tx}").into_bytes()
}

/// A verified, published range proof: the statement, who signed what, and where it landed.
/// The statement and proof bytes are kept so anyone can re-verify from state alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProofRecord {
    /// The `PublishRangeProof` transaction.
    pub tx: TxHash,
    /// The organisation that published it (the device's owner at the time).
    pub publisher: String,
    pub reading: ReadingCommitment,
    pub min: u64,
    pub max: u64,
    pub bits: u8,
    /// Which device key signed the statement.
    pub signed_by: StatementKey,
    pub height: u64,
    pub timestamp_ms: u64,
    pub statement: Vec<u8>,
    pub proof: Vec<u8>,
}

impl RangeProofRecord {
    const ARITY: usize = 11;
}

impl Encode for RangeProofRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY)
            .bytes(&self.tx.0)
            .text(&self.publisher)
            .bytes(&self.reading.to_payload())
            .uint(self.min)
            .uint(self.max)
            .uint(u64::from(self.bits));
        self.signed_by.encode(e);
        e.uint(self.height)
            .uint(self.timestamp_ms)
            .bytes(&self.statement)
            .bytes(&self.proof);
    }
}

impl Decode for RangeProofRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let tx = TxHash(d.fixed()?);
        let publisher = d.string()?;
        check_name(&publisher)?;
        let r = RangeProofRecord {
            tx,
            publisher,
            reading: ReadingCommitment::from_payload(d.bytes()?)?,
            min: d.uint()?,
            max: d.uint()?,
            bits: decode_bits(d)?,
            signed_by: StatementKey::decode(d)?,
            height: d.uint()?,
            timestamp_ms: d.uint()?,
            statement: bounded_bytes(d, "reading statement", 1, MAX_READING_STATEMENT_BYTES)?,
            proof: bounded_bytes(d, "range proof", 1, MAX_RANGE_PROOF_BYTES)?,
        };
        d.end();
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Payload;
    use alloc::vec;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn rep(b: u8, n: usize) -> String {
        hex::encode(vec![b; n])
    }

    fn reading() -> ReadingCommitment {
        ReadingCommitment {
            device: DeviceId([1; 20]),
            stream: "air".into(),
            seq: 7,
            record_hash: [2; 32],
            quantity: "no2".into(),
            commitment: [3; 32],
        }
    }

    #[test]
    fn frozen_reading_commitment_payload() {
        // ["chipledger/reading-commitment/v1", h'01…', "air", 7, h'02…', "no2", h'03…']
        let want = format!(
            "87 78 20 {} 54{} 63{} 07 5820{} 63{} 5820{}",
            hex::encode(TAG_READING_COMMITMENT_V1),
            rep(1, 20),
            hex::encode("air"),
            rep(2, 32),
            hex::encode("no2"),
            rep(3, 32)
        );
        let bytes = reading().to_payload();
        assert_eq!(bytes, h(&want));
        assert_eq!(ReadingCommitment::from_payload(&bytes).unwrap(), reading());
        for cut in 0..bytes.len() {
            assert!(ReadingCommitment::from_payload(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn bad_reading_commitments_are_refused() {
        let mut other_tag = reading().to_payload();
        other_tag[3] ^= 0x01; // first byte of the tag text
        assert!(ReadingCommitment::from_payload(&other_tag).is_err());
        for (stream, quantity, seq) in [("a/b", "no2", 1), ("air", "", 1), ("air", "n o2", 1), ("air", "no2", 0)] {
            let rc = ReadingCommitment {
                stream: stream.into(),
                quantity: quantity.into(),
                seq,
                ..reading()
            };
            assert!(
                ReadingCommitment::from_payload(&rc.to_payload()).is_err(),
                "{stream} {quantity} {seq}"
            );
        }
        let mut trailing = reading().to_payload();
        trailing.push(0);
        assert!(ReadingCommitment::from_payload(&trailing).is_err());
    }

    #[test]
    fn frozen_publish_range_proof_payload() {
        let p = Payload::PublishRangeProof(PublishRangeProof {
            statement: vec![0xd2, 0x84],
            min: 1,
            max: 300,
            bits: 16,
            proof: vec![9; 4],
        });
        // [70, h'd284', 1, 300, 16, h'09090909']
        let bytes = p.to_cbor();
        assert_eq!(bytes, h("86 1846 42d284 01 19012c 10 4409090909"));
        assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
        assert_eq!(p.kind(), "publish-range-proof");
        for cut in 0..bytes.len() {
            assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn bad_publish_payloads_are_typed_errors() {
        let ok = PublishRangeProof {
            statement: vec![1; 10],
            min: 0,
            max: 10,
            bits: 8,
            proof: vec![2; 544],
        };
        let refused = |p: PublishRangeProof| {
            let p = Payload::PublishRangeProof(p);
            Payload::from_cbor(&p.to_cbor(), Limits::TX).unwrap_err()
        };
        assert!(Payload::from_cbor(&Payload::PublishRangeProof(ok.clone()).to_cbor(), Limits::TX).is_ok());
        for bits in [0, 7, 12, 128] {
            assert!(matches!(
                refused(PublishRangeProof { bits, ..ok.clone() }),
                DecodeError::Invalid { .. }
            ));
        }
        let long_proof = PublishRangeProof {
            proof: vec![0; MAX_RANGE_PROOF_BYTES + 1],
            ..ok.clone()
        };
        assert!(matches!(refused(long_proof), DecodeError::TooLong { .. }));
        let long_statement = PublishRangeProof {
            statement: vec![0; MAX_READING_STATEMENT_BYTES + 1],
            ..ok.clone()
        };
        assert!(matches!(refused(long_statement), DecodeError::TooLong { .. }));
        assert!(matches!(
            refused(PublishRangeProof {
                proof: vec![],
                ..ok.clone()
            }),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(
            refused(PublishRangeProof {
                statement: vec![],
                ..ok
            }),
            DecodeError::Invalid { .. }
        ));
    }

    #[test]
    fn frozen_record() {
        let rec = RangeProofRecord {
            tx: TxHash([4; 32]),
            publisher: "city".into(),
            reading: reading(),
            min: 0,
            max: 40,
            bits: 8,
            signed_by: StatementKey::Alias,
            height: 12,
            timestamp_ms: 1000,
            statement: vec![5],
            proof: vec![6],
        };
        let want = format!(
            "8b 5820{} 64{} 58{:02x}{} 00 1828 08 02 0c 1903e8 4105 4106",
            rep(4, 32),
            hex::encode("city"),
            reading().to_payload().len(),
            hex::encode(reading().to_payload())
        );
        assert_eq!(rec.to_cbor(), h(&want));
        assert_eq!(RangeProofRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), rec);
        assert_eq!(
            range_proof_key(&TxHash([0xab; 32])),
            format!("zk/proof/{}", rep(0xab, 32)).into_bytes()
        );
        assert_eq!(StatementKey::DeviceId.name(), "device-id");
    }
}
