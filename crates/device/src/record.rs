//! Signing and verifying device data records (issue 5). The wire format, the record hash and
//! the chain checker live in `chipledger_types::record` (shared with the std gateway); this
//! module adds the signatures by the device's Alias key (ES256 or EdDSA).
//!
//! - [`sign_record`] / [`RecordChainWriter`]: what the device runs: one tagged COSE_Sign1 per
//!   record, ES256 signatures normalised to low-S so a record has exactly one valid encoding.
//! - [`verify_record`]: what the gateway, an auditor or an owner runs: framing, algorithm,
//!   low-S, signature, then the body's field rules.

use alloc::string::String;
use alloc::vec::Vec;

use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_RECORD_BYTES;
pub use chipledger_types::record::{
    ChainAnomaly, ChainState, Record, RecordAlg, RecordError, RecordHash, STREAM_EPOCH_KEYS, TAG_RECORD_V1, record_hash,
};
use chipledger_types::record::{assemble_sign1, check_stream, parse_sign1, sig_structure};

use crate::key::{DeviceKeyAlg, DevicePublicKey, DeviceSignature, DeviceSigner};

/// The record algorithm of a device key type.
pub fn record_alg(alg: DeviceKeyAlg) -> RecordAlg {
    match alg {
        DeviceKeyAlg::P256 => RecordAlg::Es256,
        DeviceKeyAlg::Ed25519 => RecordAlg::EdDsa,
    }
}

/// A signed record as published: its bytes and their hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord {
    /// The tagged COSE_Sign1.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes` (the next record's `prev`).
    pub hash: RecordHash,
}

/// Signs `record` with the Alias key: validates it, signs the COSE `Sig_structure`
/// (deterministic: RFC 6979 / RFC 8032; ES256 normalised to low-S) and frames the result.
pub fn sign_record<'k>(record: &Record, alias_key: impl Into<DeviceSigner<'k>>) -> Result<SignedRecord, RecordError> {
    let signer = alias_key.into();
    record.validate()?;
    let alg = record_alg(signer.alg());
    let body = record.encode_body();
    let signature = match signer.sign(&sig_structure(alg, &body)) {
        DeviceSignature::P256(sig) => DeviceSignature::P256(sig.normalize_s()),
        ed => ed,
    };
    let bytes = assemble_sign1(alg, &body, &signature.to_bytes());
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let hash = record_hash(&bytes);
    Ok(SignedRecord { bytes, hash })
}

/// Verifies a record's bytes under the device's Alias key and returns its content. Refuses
/// (typed [`RecordError`]) anything but the one canonical layout, an algorithm other than the
/// key's, a high-S ES256 signature, a bad signature, and a body breaking a field rule. Never
/// panics; bounded by `MAX_RECORD_BYTES` before any parsing. The record hash is
/// [`record_hash`] of the same bytes.
pub fn verify_record(bytes: &[u8], alias_public: &DevicePublicKey) -> Result<Record, RecordError> {
    let parts = parse_sign1(bytes)?;
    let key_alg = record_alg(alias_public.alg());
    if parts.alg != key_alg {
        return Err(RecordError::AlgorithmMismatch {
            record: parts.alg,
            key: key_alg,
        });
    }
    let record = Record::decode_body(parts.body)?;
    let signature =
        DeviceSignature::from_slice(alias_public.alg(), &parts.signature).map_err(|_| RecordError::BadSignature)?;
    if let DeviceSignature::P256(sig) = signature
        && sig.normalize_s() != sig
    {
        return Err(RecordError::HighS);
    }
    alias_public
        .verify(&sig_structure(parts.alg, parts.body), &signature)
        .map_err(|_| RecordError::BadSignature)?;
    Ok(record)
}

/// The device side of one (device, stream) chain: numbers records from 1 and links each to the
/// previous one's hash. Keep one per stream; persist `(next_seq, prev)` across reboots (or
/// start a new stream name) so seq never repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChainWriter {
    device: DeviceId,
    stream: String,
    next_seq: u64,
    prev: RecordHash,
}

impl RecordChainWriter {
    /// A new chain: the first record will be seq 1 with a zero `prev`.
    pub fn new(device: DeviceId, stream: &str) -> Result<Self, RecordError> {
        Self::resume(device, stream, 1, RecordHash::ZERO)
    }

    /// Continues a chain whose next record is `next_seq` and whose last record hashed `prev`.
    pub fn resume(device: DeviceId, stream: &str, next_seq: u64, prev: RecordHash) -> Result<Self, RecordError> {
        check_stream(stream)?;
        Ok(Self {
            device,
            stream: stream.into(),
            next_seq,
            prev,
        })
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Signs the next record carrying `payload` and advances the chain (only on success).
    pub fn sign_next<'k>(
        &mut self,
        alias_key: impl Into<DeviceSigner<'k>>,
        timestamp_ms: u64,
        epoch: u32,
        payload: Vec<u8>,
    ) -> Result<(Record, SignedRecord), RecordError> {
        let record = Record {
            device: self.device,
            stream: self.stream.clone(),
            seq: self.next_seq,
            prev: self.prev,
            timestamp_ms,
            epoch,
            payload,
        };
        let signed = sign_record(&record, alias_key)?;
        self.next_seq += 1;
        self.prev = signed.hash;
        Ok((record, signed))
    }
}
