//! Ingestion: one record's bytes in, a durable acceptance (the ack) or a typed refusal out.
//!
//! Order of checks: size bound, framing + body decode (to learn the claimed device), the
//! device's directory entry (revoked → refused), signature under the most trusted key that
//! verifies (attested Alias key → trust 2, registered DeviceID key → 1, a key the device
//! announced itself → 0), then the stored record at the same seq (same hash → duplicate, other
//! hash → fork), then [`ChainState::check`]. The store write happens before any in-memory
//! state changes, so a failed write leaves the gateway as it was and nothing is acked.
//! [`Gateway::ingest`] is a group of one: the pipeline itself is [`Gateway::ingest_many`]
//! (`crate::group`: signatures on all cores, one store transaction per group).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chipledger_device::key::DevicePublicKey;
use chipledger_types::data_tx::{AnomalyKind, ReportChainAnomaly, TrustLevel};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::{MAX_ANOMALY_EVIDENCE, MAX_BATCH_HEADS, MAX_BATCH_RECORDS};
use chipledger_types::merkle::Hash;
use chipledger_types::record::{ChainAnomaly, ChainState, Record, RecordHash};

use crate::error::{IngestError, StoreError};
use crate::reject::{MAX_REJECTION_SLOTS, REJECTION_REPORT_INTERVAL, RejectionLimiter};
use crate::store::{BatchRow, ChainKey, PendingRecord, Store};

/// A device's standing in the registry, as the gateway last learned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Registered,
    Revoked,
    Unknown,
}

/// What the gateway knows about one device's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    pub status: DeviceStatus,
    /// The registered DeviceID key (trust 1).
    pub device_id_key: Option<DevicePublicKey>,
    /// The Alias key of the currently attested firmware, from verified DICE evidence (trust 2).
    pub attested_alias: Option<DevicePublicKey>,
    /// A key the device announced itself (e.g. in an MQTT birth message; trust 0).
    pub self_reported: Option<DevicePublicKey>,
}

impl DeviceEntry {
    /// A device nobody announced.
    pub const UNKNOWN: DeviceEntry = DeviceEntry {
        status: DeviceStatus::Unknown,
        device_id_key: None,
        attested_alias: None,
        self_reported: None,
    };

    /// Keys to try, most trusted first; empty for a revoked device.
    pub(crate) fn candidates(&self) -> Vec<(DevicePublicKey, TrustLevel)> {
        let registered = match self.status {
            DeviceStatus::Revoked => return Vec::new(),
            DeviceStatus::Registered => [
                self.attested_alias.map(|k| (k, TrustLevel::Attested)),
                self.device_id_key.map(|k| (k, TrustLevel::Registered)),
            ],
            DeviceStatus::Unknown => [None, None],
        };
        let own = self.self_reported.map(|k| (k, TrustLevel::SelfReported));
        registered.into_iter().chain([own]).flatten().collect()
    }
}

/// Where the gateway looks devices up (the node's registry via its HTTP API, or memory).
pub trait DeviceDirectory {
    fn lookup(&self, device: &DeviceId) -> DeviceEntry;
}

/// An in-memory [`DeviceDirectory`] (tests, the simulator, a cache in front of the node).
#[derive(Clone, Debug, Default)]
pub struct MemoryDirectory {
    entries: BTreeMap<DeviceId, DeviceEntry>,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, device: DeviceId) -> &mut DeviceEntry {
        self.entries.entry(device).or_insert(DeviceEntry::UNKNOWN)
    }

    /// A registered device with its DeviceID key.
    pub fn register(&mut self, device: DeviceId, device_id_key: DevicePublicKey) {
        let e = self.entry(device);
        e.status = DeviceStatus::Registered;
        e.device_id_key = Some(device_id_key);
    }

    /// The Alias key backed by verified evidence for the device's current firmware.
    pub fn attest(&mut self, device: DeviceId, alias: DevicePublicKey) {
        self.entry(device).attested_alias = Some(alias);
    }

    /// A key the device announced itself (birth message): enough for trust 0.
    pub fn announce(&mut self, device: DeviceId, key: DevicePublicKey) {
        self.entry(device).self_reported = Some(key);
    }

    pub fn revoke(&mut self, device: DeviceId) {
        self.entry(device).status = DeviceStatus::Revoked;
    }
}

impl DeviceDirectory for MemoryDirectory {
    fn lookup(&self, device: &DeviceId) -> DeviceEntry {
        self.entries.get(device).cloned().unwrap_or(DeviceEntry::UNKNOWN)
    }
}

/// A record the gateway holds durably: safe to ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub device: DeviceId,
    pub stream: String,
    pub seq: u64,
    pub hash: RecordHash,
    pub trust: TrustLevel,
    /// `Gap` (accepted, head moved), `OutOfOrder` (accepted, fills a gap, moves no head) or
    /// `Duplicate` (already held: nothing written, ack again).
    pub anomaly: Option<ChainAnomaly>,
}

/// Gateway settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The registered gateway name (`RegisterGateway`).
    pub name: String,
    /// Cut a batch at this many records (at most `MAX_BATCH_RECORDS`).
    pub max_batch_records: usize,
    /// Cut a non-empty batch once its oldest record waited this long.
    pub max_batch_age: Duration,
    /// Most chain heads per batch (at most `MAX_BATCH_HEADS`).
    pub max_batch_heads: usize,
}

impl GatewayConfig {
    /// Defaults: the ledger's limits and one batch per second.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            max_batch_records: MAX_BATCH_RECORDS,
            max_batch_age: Duration::from_secs(1),
            max_batch_heads: MAX_BATCH_HEADS,
        }
    }
}

/// The gateway pipeline over one record store. Not internally synchronised: a transport
/// shares it behind a mutex.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) store: Store,
    pub(crate) chains: BTreeMap<ChainKey, ChainState>,
    /// Accepted records not yet in a batch, in arrival order (with their durable index).
    pub(crate) pending: Vec<(u64, PendingRecord)>,
    /// When the oldest pending record arrived (restart: the time of the restart).
    pub(crate) oldest_pending: Option<Instant>,
    pub(crate) next_pending: u64,
    pub(crate) next_anomaly: u64,
    pub(crate) next_batch_seq: u64,
    /// Cut batches not yet committed, by seq.
    pub(crate) open_batches: BTreeMap<u64, BatchRow>,
    /// Rate limit of rejection and duplicate reports (`crate::reject`).
    pub(crate) rejections: RejectionLimiter,
    /// Where the gateway reads the time (batch age, duplicate reports): the monotonic clock,
    /// or a simulation's virtual one ([`Gateway::with_clock`]).
    pub(crate) clock: Clock,
}

/// A source of [`Instant`]s.
pub type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

impl Gateway {
    /// Opens the store at `path` and resumes: chain heads, pending records, open batches.
    /// Chains resume from their durable head only (missing ranges are not persisted, so a
    /// gap-filling record arriving after a restart is reported as a replay).
    pub fn open(path: &Path, config: GatewayConfig) -> Result<Gateway, StoreError> {
        Ok(Self::resume(Store::open(path)?, config))
    }

    /// [`Gateway::open`] over a given storage backend for the record store (the simulator
    /// runs it on a disk that fails or loses power).
    pub fn open_with_backend(backend: impl redb::StorageBackend, config: GatewayConfig) -> Result<Gateway, StoreError> {
        Ok(Self::resume(Store::open_with_backend(backend)?, config))
    }

    fn resume((store, loaded): (Store, crate::store::Loaded), mut config: GatewayConfig) -> Gateway {
        config.max_batch_records = config.max_batch_records.clamp(1, MAX_BATCH_RECORDS);
        config.max_batch_heads = config.max_batch_heads.clamp(1, MAX_BATCH_HEADS);
        let chains = loaded
            .heads
            .into_iter()
            .map(|(k, (seq, hash))| (k, ChainState::resume(seq, hash)))
            .collect();
        Gateway {
            config,
            store,
            chains,
            oldest_pending: (!loaded.pending.is_empty()).then(Instant::now),
            pending: loaded.pending,
            next_pending: loaded.next_pending_index,
            next_anomaly: loaded.next_anomaly_index,
            next_batch_seq: loaded.next_batch_seq,
            open_batches: loaded.open_batches,
            rejections: RejectionLimiter::new(REJECTION_REPORT_INTERVAL, MAX_REJECTION_SLOTS),
            clock: Box::new(Instant::now),
        }
    }

    /// Reads the time from `clock` instead of the monotonic clock (a deterministic simulation
    /// drives it from virtual time, so the batch age and the rate limit of duplicate reports
    /// do not depend on how fast the host runs). Pass the same clock's readings to
    /// [`Gateway::batch_due`], [`Gateway::queue_rejection`] and [`Gateway::flush_rejections`].
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if self.oldest_pending.is_some() {
            self.oldest_pending = Some(clock());
        }
        self.clock = clock;
        self
    }

    /// The gateway's time now.
    pub(crate) fn now(&self) -> Instant {
        (self.clock)()
    }

    /// The settings in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The record store (read access for APIs and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How many accepted records wait for a batch.
    pub fn pending_records(&self) -> usize {
        self.pending.len()
    }

    /// Verifies, classifies and durably stores one record. `Ok` means the record is on disk
    /// (or already was): the caller may ack it. Never panics on input. A group of one
    /// ([`Gateway::ingest_many`]).
    pub fn ingest<D: DeviceDirectory + ?Sized>(
        &mut self,
        bytes: &[u8],
        directory: &D,
    ) -> Result<Accepted, IngestError> {
        let mut results = self.ingest_many(&[bytes], directory);
        assert_eq!(results.len(), 1, "ingest_many answers each record");
        results.remove(0)
    }

    /// The `ReportChainAnomaly` payload for an anomaly.
    pub(crate) fn report(&self, record: &Record, hash: RecordHash, anomaly: &ChainAnomaly) -> ReportChainAnomaly {
        let (kind, expected_seq, evidence): (AnomalyKind, Option<u64>, Vec<Hash>) = match *anomaly {
            ChainAnomaly::Gap { expected, .. } => (AnomalyKind::Gap, Some(expected), vec![hash.0]),
            ChainAnomaly::Duplicate { .. } => (AnomalyKind::Duplicate, None, vec![hash.0]),
            ChainAnomaly::Fork {
                accepted, conflicting, ..
            } => (AnomalyKind::Fork, None, vec![accepted.0, conflicting.0, hash.0]),
            ChainAnomaly::Replay { head, .. } => (AnomalyKind::Replay, head.checked_add(1), vec![hash.0]),
            ChainAnomaly::OutOfOrder { head, .. } => (AnomalyKind::OutOfOrder, head.checked_add(1), vec![hash.0]),
            _ => (AnomalyKind::Malformed, None, vec![hash.0]),
        };
        let mut distinct = Vec::with_capacity(evidence.len());
        for h in evidence {
            if !distinct.contains(&h) && distinct.len() < MAX_ANOMALY_EVIDENCE {
                distinct.push(h);
            }
        }
        ReportChainAnomaly {
            gateway: self.config.name.clone(),
            device: record.device,
            stream: record.stream.clone(),
            kind,
            seq: record.seq,
            expected_seq,
            evidence: distinct,
            detail: anomaly.to_string(),
        }
    }

    /// Anomaly reports waiting to be sent as `ReportChainAnomaly` (oldest first, with the
    /// index to pass to [`Gateway::anomaly_sent`]).
    pub fn queued_anomalies(&self) -> Result<Vec<(u64, ReportChainAnomaly)>, StoreError> {
        self.store.anomalies()
    }

    /// Drops a queued anomaly report once the ledger accepted it.
    pub fn anomaly_sent(&self, index: u64) -> Result<(), StoreError> {
        self.store.remove_anomaly(index)
    }
}

pub(crate) fn accepted(
    record: &Record,
    hash: RecordHash,
    trust: TrustLevel,
    anomaly: Option<ChainAnomaly>,
) -> Accepted {
    Accepted {
        device: record.device,
        stream: record.stream.clone(),
        seq: record.seq,
        hash,
        trust,
        anomaly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_device::key::DeviceSigner;

    fn key(n: u8) -> DevicePublicKey {
        DeviceSigner::from(&ed25519_dalek::SigningKey::from_bytes(&[n; 32])).public_key()
    }

    /// Keys are tried most trusted first; a revoked device has none; an unknown device only
    /// its self-reported key.
    #[test]
    fn candidate_keys_by_status() {
        use TrustLevel::*;
        let all = |status| DeviceEntry {
            status,
            device_id_key: Some(key(1)),
            attested_alias: Some(key(2)),
            self_reported: Some(key(3)),
        };
        let cases = [
            (
                DeviceStatus::Registered,
                vec![(key(2), Attested), (key(1), Registered), (key(3), SelfReported)],
            ),
            (DeviceStatus::Unknown, vec![(key(3), SelfReported)]),
            (DeviceStatus::Revoked, vec![]),
        ];
        for (status, want) in cases {
            assert_eq!(all(status).candidates(), want, "{status:?}");
        }
        assert!(DeviceEntry::UNKNOWN.candidates().is_empty());
    }
}
