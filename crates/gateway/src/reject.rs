//! Refused records reported to the ledger: a record refused for its signature
//! (`bad_signature`), because its device is revoked (`revoked_device`), or because it is
//! oversized or undecodable (`malformed`) becomes a `ReportChainAnomaly`, and so does a
//! redelivered or replayed copy of a record the gateway already holds (`duplicate`, acked
//! again). Chain anomalies of new records (gap, fork, replay, out of order) are queued by
//! [`Gateway::ingest`] itself.
//!
//! **Flood protection.** Anyone can publish garbage on a device's topic or replay its old
//! records, so these reports are rate-limited per (device, kind): the first is queued durably
//! at once, later ones within [`REJECTION_REPORT_INTERVAL`] are held back (in memory: the
//! newest one and a count); [`Gateway::flush_rejections`] queues the newest held report once
//! the interval has passed, its detail naming how many it stands for. So a device costs the
//! ledger at most one report per kind per interval. A device the registry does not know is
//! never reported (its id may be made up), only counted, and at most
//! [`MAX_REJECTION_SLOTS`] (device, kind) pairs are tracked at once (more are counted and
//! dropped). Held reports are lost in a crash; the first report of each burst is not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chipledger_types::data_tx::{AnomalyKind, ReportChainAnomaly};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_TEXT_BYTES;
use chipledger_types::record::{Record, RecordError, RecordHash, parse_sign1, record_hash};

use crate::error::{IngestError, StoreError};
use crate::ingest::{DeviceDirectory, DeviceStatus, Gateway};

/// Least time between two reports of one (device, kind); rejections in between are coalesced.
pub const REJECTION_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Most (device, kind) pairs whose reports are held back at once.
pub const MAX_REJECTION_SLOTS: usize = 10_000;
/// The stream named in the report of a record whose stream is unknown (it did not decode).
pub const UNDECODABLE_STREAM: &str = "_undecodable";

/// One refused record, as it will be reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub device: DeviceId,
    /// The record's stream, or [`UNDECODABLE_STREAM`].
    pub stream: String,
    /// The record's seq (0 when it did not decode).
    pub seq: u64,
    pub kind: AnomalyKind,
    /// Stable snake_case name of the typed error (`bad_signature`, `high_s`, `revoked`,
    /// `frame_too_large`, `body`, …): the report's detail starts with it.
    pub code: &'static str,
    /// The error's message.
    pub message: String,
    /// Hash of the refused bytes, when the gateway had them.
    pub evidence: Option<RecordHash>,
}

impl Rejection {
    /// The report of `bytes` (from `topic_device`'s topic) refused by ingest with `error`;
    /// `None` for refusals reported otherwise (chain anomalies: by ingest), retried (store) or
    /// only counted (unknown device). The device is the record's own when its body decodes
    /// (a relayed record names another device than its topic), else the topic's.
    pub fn of_ingest(error: &IngestError, bytes: &[u8], topic_device: DeviceId) -> Option<Rejection> {
        let (kind, code) = classify(error)?;
        let claimed = parse_sign1(bytes).ok().and_then(|p| Record::decode_body(p.body).ok());
        let (device, stream, seq) = match claimed {
            Some(r) => (r.device, r.stream, r.seq),
            None => (topic_device, UNDECODABLE_STREAM.into(), 0),
        };
        Some(Rejection {
            device,
            stream,
            seq,
            kind,
            code,
            message: error.to_string(),
            evidence: Some(record_hash(bytes)),
        })
    }

    /// A frame dropped by the transport before ingest (oversized or not a frame): `malformed`.
    pub fn dropped_frame(device: DeviceId, code: &'static str, message: String) -> Rejection {
        Rejection {
            device,
            stream: UNDECODABLE_STREAM.into(),
            seq: 0,
            kind: AnomalyKind::Malformed,
            code,
            message,
            evidence: None,
        }
    }

    fn report(&self, gateway: &str, coalesced: u64) -> ReportChainAnomaly {
        let suffix = match coalesced {
            0 => String::new(),
            n => format!(" (+{n} more {} rejections of this device coalesced)", self.kind.name()),
        };
        let mut detail = format!("{}: {}", self.code, self.message);
        truncate(&mut detail, MAX_TEXT_BYTES - suffix.len());
        detail.push_str(&suffix);
        ReportChainAnomaly {
            gateway: gateway.into(),
            device: self.device,
            stream: self.stream.clone(),
            kind: self.kind,
            seq: self.seq,
            expected_seq: None,
            evidence: self.evidence.map(|h| vec![h.0]).unwrap_or_default(),
            detail,
        }
    }
}

/// The anomaly kind and error code of an ingest refusal that is reported as a rejection.
fn classify(error: &IngestError) -> Option<(AnomalyKind, &'static str)> {
    use AnomalyKind::{BadSignature, Malformed, RevokedDevice};
    Some(match error {
        IngestError::TooLarge { .. } => (Malformed, "too_large"),
        IngestError::Revoked(_) => (RevokedDevice, "revoked"),
        IngestError::NoMatchingKey(_) => (BadSignature, "no_matching_key"),
        IngestError::Record(e) => match e {
            RecordError::BadSignature => (BadSignature, "bad_signature"),
            RecordError::HighS => (BadSignature, "high_s"),
            RecordError::AlgorithmMismatch { .. } => (BadSignature, "algorithm_mismatch"),
            RecordError::TooLarge { .. } => (Malformed, "too_large"),
            RecordError::Framing(_) => (Malformed, "framing"),
            RecordError::UnsupportedAlgorithm => (Malformed, "unsupported_algorithm"),
            RecordError::Body(_) => (Malformed, "body"),
            RecordError::InvalidField { .. } => (Malformed, "invalid_field"),
            _ => (Malformed, "record"),
        },
        IngestError::UnknownDevice(_) | IngestError::Chain(_) | IngestError::Store(_) => return None,
    })
}

/// Cuts `s` to at most `max` bytes on a char boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// What [`Gateway::queue_rejection`] did with a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionOutcome {
    /// Queued durably for the ledger.
    Queued,
    /// Held back: a report of this device and kind was queued less than an interval ago.
    Coalesced,
    /// The registry does not know the device: counted, never reported.
    UnknownDevice,
    /// [`MAX_REJECTION_SLOTS`] pairs are held back already: counted, dropped.
    TooManySlots,
}

/// Counts of [`RejectionOutcome`]s since the gateway started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectionStats {
    pub queued: u64,
    pub coalesced: u64,
    pub unknown_device: u64,
    pub too_many_slots: u64,
}

/// One (device, kind) whose last report was queued at `last_queued`.
#[derive(Clone, Debug)]
struct Slot {
    last_queued: Instant,
    /// The newest rejection held back since, and how many were.
    held: Option<Rejection>,
    held_count: u64,
}

/// The per (device, kind) rate limit (pure: time is an input).
#[derive(Debug)]
pub(crate) struct RejectionLimiter {
    slots: BTreeMap<(DeviceId, AnomalyKind), Slot>,
    interval: Duration,
    max_slots: usize,
    pub(crate) stats: RejectionStats,
}

/// The limiter's answer for one rejection.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Report now, standing for this many held-back ones too.
    Report {
        coalesced: u64,
    },
    Hold,
    Full,
}

impl RejectionLimiter {
    pub(crate) fn new(interval: Duration, max_slots: usize) -> Self {
        Self {
            slots: BTreeMap::new(),
            interval,
            max_slots: max_slots.max(1),
            stats: RejectionStats::default(),
        }
    }

    fn admit(&mut self, key: (DeviceId, AnomalyKind), now: Instant) -> Admit {
        if let Some(slot) = self.slots.get(&key) {
            return match now.saturating_duration_since(slot.last_queued) < self.interval {
                true => Admit::Hold,
                false => Admit::Report {
                    coalesced: slot.held_count,
                },
            };
        }
        if self.slots.len() >= self.max_slots {
            self.evict_idle(now);
        }
        match self.slots.len() < self.max_slots {
            true => Admit::Report { coalesced: 0 },
            false => Admit::Full,
        }
    }

    fn hold(&mut self, rejection: Rejection) {
        if let Some(slot) = self.slots.get_mut(&(rejection.device, rejection.kind)) {
            slot.held = Some(rejection);
            slot.held_count += 1;
        }
    }

    fn queued(&mut self, key: (DeviceId, AnomalyKind), now: Instant) {
        let slot = Slot {
            last_queued: now,
            held: None,
            held_count: 0,
        };
        self.slots.insert(key, slot);
    }

    /// Held rejections whose interval has passed (the newest of each pair, and how many
    /// others it stands for); their slots restart at `now`.
    fn due(&mut self, now: Instant) -> Vec<(Rejection, u64)> {
        let mut out = Vec::new();
        for slot in self.slots.values_mut() {
            if now.saturating_duration_since(slot.last_queued) < self.interval {
                continue;
            }
            if let Some(r) = slot.held.take() {
                out.push((r, slot.held_count.saturating_sub(1)));
                slot.held_count = 0;
                slot.last_queued = now;
            }
        }
        self.evict_idle(now);
        out
    }

    /// Forgets pairs with nothing held whose interval has passed.
    fn evict_idle(&mut self, now: Instant) {
        let interval = self.interval;
        self.slots
            .retain(|_, s| s.held.is_some() || now.saturating_duration_since(s.last_queued) < interval);
    }
}

impl Gateway {
    /// Reports a refused record to the ledger, rate-limited per (device, kind) (see the module
    /// docs). A device the registry does not know is counted only. `Err` only when the store
    /// failed to queue a due report.
    pub fn queue_rejection<D: DeviceDirectory + ?Sized>(
        &mut self,
        rejection: Rejection,
        directory: &D,
        now: Instant,
    ) -> Result<RejectionOutcome, StoreError> {
        if directory.lookup(&rejection.device).status == DeviceStatus::Unknown {
            self.rejections.stats.unknown_device += 1;
            return Ok(RejectionOutcome::UnknownDevice);
        }
        self.queue_limited(rejection, now)
    }

    /// [`Gateway::queue_rejection`] for a device already known (its record verified).
    pub(crate) fn queue_limited(&mut self, rejection: Rejection, now: Instant) -> Result<RejectionOutcome, StoreError> {
        let key = (rejection.device, rejection.kind);
        match self.rejections.admit(key, now) {
            Admit::Hold => {
                self.rejections.hold(rejection);
                self.rejections.stats.coalesced += 1;
                Ok(RejectionOutcome::Coalesced)
            }
            Admit::Full => {
                self.rejections.stats.too_many_slots += 1;
                Ok(RejectionOutcome::TooManySlots)
            }
            Admit::Report { coalesced } => {
                self.queue_report(&rejection, coalesced)?;
                self.rejections.queued(key, now);
                Ok(RejectionOutcome::Queued)
            }
        }
    }

    fn queue_report(&mut self, rejection: &Rejection, coalesced: u64) -> Result<(), StoreError> {
        let report = rejection.report(&self.config.name, coalesced);
        self.store.record_anomaly(self.next_anomaly, &report, None)?;
        self.next_anomaly += 1;
        self.rejections.stats.queued += 1;
        Ok(())
    }

    /// Queues the held-back rejection reports whose interval has passed; returns how many.
    /// Call it before [`Gateway::queued_anomalies`] in the ledger loop.
    pub fn flush_rejections(&mut self, now: Instant) -> Result<usize, StoreError> {
        let due = self.rejections.due(now);
        for (rejection, coalesced) in &due {
            self.queue_report(rejection, *coalesced)?;
        }
        Ok(due.len())
    }

    /// Rejection counts since the gateway started.
    pub fn rejection_stats(&self) -> RejectionStats {
        self.rejections.stats
    }

    /// A record the store already holds arrived again (a QoS 1 redelivery, a device
    /// republishing what it had no `DACK` for, or a replay of a captured record): reported as
    /// `duplicate`, rate-limited like rejections. The record verified, so its device is known.
    pub(crate) fn note_duplicate(&mut self, record: &Record, hash: RecordHash) {
        let rejection = Rejection {
            device: record.device,
            stream: record.stream.clone(),
            seq: record.seq,
            kind: AnomalyKind::Duplicate,
            code: "duplicate",
            message: format!("record seq {} is already held (same hash); acked again", record.seq),
            evidence: Some(hash),
        };
        let now = self.now();
        if let Err(e) = self.queue_limited(rejection, now) {
            tracing::warn!(error = %e, "duplicate report not queued");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::MemoryDirectory;
    use chipledger_device::key::{DevicePublicKey, DeviceSigner};

    fn key(n: u8) -> DevicePublicKey {
        DeviceSigner::from(&ed25519_dalek::SigningKey::from_bytes(&[n; 32])).public_key()
    }

    fn rejection(device: u8, kind: AnomalyKind, message: &str) -> Rejection {
        Rejection {
            device: DeviceId([device; 20]),
            stream: "s".into(),
            seq: 1,
            kind,
            code: "test",
            message: message.into(),
            evidence: None,
        }
    }

    use crate::test_support::Scratch;

    fn details(gw: &Gateway) -> Vec<(AnomalyKind, String)> {
        let queued = gw.queued_anomalies().unwrap().into_iter();
        queued.map(|(_, a)| (a.kind, a.detail)).collect()
    }

    /// A burst from one device: the first report goes out at once, the rest wait for the
    /// interval and then leave as one report naming how many it stands for; another kind or
    /// device has its own slot; an unknown device is never reported.
    #[test]
    fn bursts_are_coalesced_per_device_and_kind() {
        use AnomalyKind::{BadSignature, Malformed};
        let (_tmp, mut gw) = Scratch::gateway("burst");
        let mut dir = MemoryDirectory::new();
        dir.register(DeviceId([1; 20]), key(1));
        dir.register(DeviceId([2; 20]), key(2));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let offer = |gw: &mut Gateway, d, kind, msg: &str, t| gw.queue_rejection(rejection(d, kind, msg), &dir, t);
        use RejectionOutcome::*;
        let cases = [
            (1, BadSignature, "a", 0, Queued),
            (1, BadSignature, "b", 1, Coalesced),
            (1, BadSignature, "c", 2, Coalesced),
            (1, BadSignature, "d", 3, Coalesced),
            (1, Malformed, "m", 3, Queued),
            (2, BadSignature, "x", 3, Queued),
            (9, BadSignature, "unknown", 3, UnknownDevice),
        ];
        for (d, kind, msg, t, want) in cases {
            assert_eq!(offer(&mut gw, d, kind, msg, at(t)).unwrap(), want, "{d} {kind:?} {msg}");
        }
        assert_eq!(gw.flush_rejections(at(9)).unwrap(), 0, "interval not over");
        assert_eq!(gw.flush_rejections(at(10)).unwrap(), 1);
        assert_eq!(gw.flush_rejections(at(11)).unwrap(), 0, "flushed once");
        let want = [
            (BadSignature, "test: a".to_string()),
            (Malformed, "test: m".into()),
            (BadSignature, "test: x".into()),
            (
                BadSignature,
                "test: d (+2 more bad_signature rejections of this device coalesced)".into(),
            ),
        ];
        assert_eq!(details(&gw), want);
        // The flush restarted the slot: within the next interval it holds again; after it a
        // new rejection is reported at once.
        assert_eq!(offer(&mut gw, 1, BadSignature, "e", at(15)).unwrap(), Coalesced);
        assert_eq!(offer(&mut gw, 1, BadSignature, "f", at(21)).unwrap(), Queued);
        let last = details(&gw).pop().unwrap();
        assert_eq!(
            last.1, "test: f (+1 more bad_signature rejections of this device coalesced)",
            "the held one is counted in the next report"
        );
        let stats = gw.rejection_stats();
        assert_eq!(
            (stats.queued, stats.coalesced, stats.unknown_device),
            (5, 4, 1),
            "queued: a, m, x, d (flushed), f"
        );
    }

    /// At most `max_slots` pairs are tracked: another device is dropped (counted) until a slot
    /// goes idle.
    #[test]
    fn slots_are_bounded() {
        let t0 = Instant::now();
        let mut limiter = RejectionLimiter::new(Duration::from_secs(10), 2);
        let key = |d: u8| (DeviceId([d; 20]), AnomalyKind::Malformed);
        for d in [1, 2] {
            assert_eq!(limiter.admit(key(d), t0), Admit::Report { coalesced: 0 });
            limiter.queued(key(d), t0);
        }
        assert_eq!(limiter.admit(key(3), t0), Admit::Full);
        limiter.hold(rejection(1, AnomalyKind::Malformed, "held"));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter.admit(key(3), later),
            Admit::Report { coalesced: 0 },
            "device 2's idle slot was evicted"
        );
        assert_eq!(limiter.slots.len(), 1, "device 1 still holds a report");
    }

    /// Ingest refusals map to kinds and codes; the report names the record's own device.
    #[test]
    fn ingest_refusals_are_classified() {
        use AnomalyKind::*;
        let id = DeviceId([4; 20]);
        let cases: [(IngestError, Option<(AnomalyKind, &str)>); 8] = [
            (
                IngestError::Record(RecordError::BadSignature),
                Some((BadSignature, "bad_signature")),
            ),
            (IngestError::Record(RecordError::HighS), Some((BadSignature, "high_s"))),
            (IngestError::Revoked(id), Some((RevokedDevice, "revoked"))),
            (IngestError::TooLarge { len: 2, max: 1 }, Some((Malformed, "too_large"))),
            (
                IngestError::Record(RecordError::Framing("x")),
                Some((Malformed, "framing")),
            ),
            (IngestError::UnknownDevice(id), None),
            (
                IngestError::Chain(chipledger_types::record::ChainAnomaly::Duplicate { seq: 1 }),
                None,
            ),
            (IngestError::Store(StoreError::Corrupt { what: "x" }), None),
        ];
        for (error, want) in cases {
            assert_eq!(classify(&error), want, "{error}");
            let r = Rejection::of_ingest(&error, b"\x84", id);
            assert_eq!(r.as_ref().map(|r| (r.kind, r.code)), want);
            if let Some(r) = r {
                assert_eq!((r.device, r.stream.as_str(), r.seq), (id, UNDECODABLE_STREAM, 0));
                assert_eq!(r.evidence, Some(record_hash(b"\x84")));
            }
        }
    }

    /// A detail never exceeds the ledger's text limit, the coalesced count included.
    #[test]
    fn long_details_are_cut_to_the_limit() {
        let r = rejection(1, AnomalyKind::Malformed, &"é".repeat(MAX_TEXT_BYTES));
        for coalesced in [0, 7] {
            let report = r.report("gw", coalesced);
            assert!(report.detail.len() <= MAX_TEXT_BYTES, "{}", report.detail.len());
            assert_eq!(report.detail.ends_with("coalesced)"), coalesced > 0);
        }
    }
}
