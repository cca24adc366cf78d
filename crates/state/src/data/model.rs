//! Data records kept only by the ledger (the ones a client proves — batch, chain head — live in
//! `chipledger_types::data_tx`).
//!
//! Keys: `data/gateway/<name>` → [`GatewayRecord`]; `data/gateways/<org>` → that operator's
//! gateway names ([`Names`]); `data/streams/<hex device>` → the device's streams with a chain
//! head ([`Names`], sorted); `data/anomalies/<hex device>` → [`AnomalyLog`].

use chipledger_types::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list, encode_list};
use chipledger_types::data_tx::{AnomalyKind, BatchRecord, ChainHead, batch_key, check_topic_name, head_key};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::decode_bounded_text;
use chipledger_types::limits::*;
use chipledger_types::merkle::Hash;
use chipledger_types::tx::check_name;

use crate::error::TxError;
use crate::model::read;
use crate::store::StateRead;

pub fn gateway_key(name: &str) -> Vec<u8> {
    format!("data/gateway/{name}").into_bytes()
}
pub fn org_gateways_key(org: &str) -> Vec<u8> {
    format!("data/gateways/{org}").into_bytes()
}
pub fn streams_key(device: &DeviceId) -> Vec<u8> {
    format!("data/streams/{device}").into_bytes()
}
pub fn anomalies_key(device: &DeviceId) -> Vec<u8> {
    format!("data/anomalies/{device}").into_bytes()
}

/// A registered gateway and its totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRecord {
    pub name: String,
    pub operator: String,
    pub registered_height: u64,
    /// Seq of the last committed batch (0 = none yet).
    pub last_batch: u64,
    /// Records committed, all batches together.
    pub records: u64,
}

/// A bounded list of names (gateways of an operator, streams of a device).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

/// One anomaly report as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnomalyEntry {
    pub kind: AnomalyKind,
    pub stream: String,
    pub seq: u64,
    pub expected_seq: Option<u64>,
    pub evidence: Vec<Hash>,
    pub detail: String,
    pub gateway: String,
    pub height: u64,
}

/// The latest rebirth request recorded for a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebirthEntry {
    pub gateway: String,
    pub edge_node: String,
    pub reason: String,
    pub height: u64,
}

/// A device's anomalies: exact counters per kind (never truncated), the most recent
/// [`MAX_DEVICE_ANOMALIES`] reports (every report stays in the log), and rebirth requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnomalyLog {
    /// Reports per kind, indexed by `kind as usize - 1` (order of [`AnomalyKind::ALL`]).
    pub counts: [u64; AnomalyKind::ALL.len()],
    /// Oldest first.
    pub recent: Vec<AnomalyEntry>,
    pub rebirths: u64,
    pub last_rebirth: Option<RebirthEntry>,
}

impl AnomalyLog {
    /// Reports of `kind`.
    pub fn count(&self, kind: AnomalyKind) -> u64 {
        self.counts[kind as usize - 1]
    }
    /// Every report, all kinds.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Count `entry` and keep it among the recent ones (dropping the oldest beyond the bound).
    pub fn push(&mut self, entry: AnomalyEntry) {
        self.counts[entry.kind as usize - 1] += 1;
        if self.recent.len() == MAX_DEVICE_ANOMALIES {
            self.recent.remove(0);
        }
        self.recent.push(entry);
        debug_assert!(self.recent.len() <= MAX_DEVICE_ANOMALIES);
    }
}

// ---- encodings ---------------------------------------------------------------------------------

fn opt_uint(e: &mut Encoder, v: Option<u64>) {
    match v {
        Some(v) => e.uint(v),
        None => e.null(),
    };
}

fn decode_name(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

fn decode_stream(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_topic_name(&s)?;
    Ok(s)
}

impl Encode for GatewayRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(5)
            .text(&self.name)
            .text(&self.operator)
            .uint(self.registered_height)
            .uint(self.last_batch)
            .uint(self.records);
    }
}
impl Decode for GatewayRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let r = GatewayRecord {
            name: decode_name(d)?,
            operator: decode_name(d)?,
            registered_height: d.uint()?,
            last_batch: d.uint()?,
            records: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for Names {
    fn encode(&self, e: &mut Encoder) {
        e.array(self.0.len());
        for n in &self.0 {
            e.text(n);
        }
    }
}
impl Decode for Names {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = d.array()?;
        let max = MAX_GATEWAYS_PER_ORG.max(MAX_STREAMS_PER_DEVICE);
        if n > max {
            return Err(DecodeError::TooLong {
                what: "name list",
                len: n as u64,
                max,
            });
        }
        let names = (0..n).map(|_| decode_stream(d)).collect::<Result<Vec<_>, _>>()?;
        d.end();
        Ok(Names(names))
    }
}

impl Encode for AnomalyEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(8);
        self.kind.encode(e);
        e.text(&self.stream).uint(self.seq);
        opt_uint(e, self.expected_seq);
        e.array(self.evidence.len());
        for h in &self.evidence {
            e.bytes(h);
        }
        e.text(&self.detail).text(&self.gateway).uint(self.height);
    }
}
impl Decode for AnomalyEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(8)?;
        let (kind, stream, seq) = (AnomalyKind::decode(d)?, decode_stream(d)?, d.uint()?);
        let expected_seq = if d.null()? { None } else { Some(d.uint()?) };
        let n = d.array()?;
        if n > MAX_ANOMALY_EVIDENCE {
            return Err(DecodeError::TooLong {
                what: "evidence hashes",
                len: n as u64,
                max: MAX_ANOMALY_EVIDENCE,
            });
        }
        let evidence = (0..n).map(|_| d.fixed()).collect::<Result<Vec<Hash>, _>>()?;
        d.end();
        let r = AnomalyEntry {
            kind,
            stream,
            seq,
            expected_seq,
            evidence,
            detail: decode_bounded_text(d, "detail", MAX_TEXT_BYTES)?,
            gateway: decode_name(d)?,
            height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for RebirthEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(4)
            .text(&self.gateway)
            .text(&self.edge_node)
            .text(&self.reason)
            .uint(self.height);
    }
}
impl Decode for RebirthEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let r = RebirthEntry {
            gateway: decode_name(d)?,
            edge_node: decode_stream(d)?,
            reason: decode_bounded_text(d, "reason", MAX_TEXT_BYTES)?,
            height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for AnomalyLog {
    fn encode(&self, e: &mut Encoder) {
        e.array(4).array(self.counts.len());
        for c in self.counts {
            e.uint(c);
        }
        encode_list(e, &self.recent);
        e.uint(self.rebirths);
        match &self.last_rebirth {
            Some(r) => r.encode(e),
            None => {
                e.null();
            }
        }
    }
}
impl Decode for AnomalyLog {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let mut counts = [0u64; AnomalyKind::ALL.len()];
        d.array_of(counts.len())?;
        for c in counts.iter_mut() {
            *c = d.uint()?;
        }
        d.end();
        let recent = decode_list(d, MAX_DEVICE_ANOMALIES)?;
        let rebirths = d.uint()?;
        let last_rebirth = if d.null()? {
            None
        } else {
            Some(RebirthEntry::decode(d)?)
        };
        d.end();
        Ok(AnomalyLog {
            counts,
            recent,
            rebirths,
            last_rebirth,
        })
    }
}

// ---- reads (rules, API, CLI) ---------------------------------------------------------------------

pub fn get_gateway(s: &dyn StateRead, name: &str) -> Result<Option<GatewayRecord>, TxError> {
    read(s, &gateway_key(name))
}
pub fn gateways_of(s: &dyn StateRead, org: &str) -> Result<Vec<String>, TxError> {
    Ok(read::<Names>(s, &org_gateways_key(org))?.unwrap_or_default().0)
}
pub fn get_batch(s: &dyn StateRead, gateway: &str, seq: u64) -> Result<Option<BatchRecord>, TxError> {
    read(s, &batch_key(gateway, seq))
}
pub fn get_head(s: &dyn StateRead, device: &DeviceId, stream: &str) -> Result<Option<ChainHead>, TxError> {
    read(s, &head_key(device, stream))
}
/// The streams of `device` with a chain head, sorted.
pub fn streams_of(s: &dyn StateRead, device: &DeviceId) -> Result<Vec<String>, TxError> {
    Ok(read::<Names>(s, &streams_key(device))?.unwrap_or_default().0)
}
/// `device`'s anomaly record (empty when none was reported).
pub fn anomalies_of(s: &dyn StateRead, device: &DeviceId) -> Result<AnomalyLog, TxError> {
    Ok(read(s, &anomalies_key(device))?.unwrap_or_default())
}
