//! A node-local secondary index of every device record: the queries the state machine does not
//! answer (devices by model, owner, manufacturer, status or attested firmware version, fleet
//! statistics), for the API, the CLI and the explorer.
//!
//! The index is **derived from finalized state only** and **never consulted by consensus**: it is
//! built at start by scanning the finalized `device/` and `mca/` records, and updated from each
//! finalized block's write set right after that block is committed (in `Executor::commit`, under
//! the executor lock, so an answer never mixes two heights). Every answer carries the height it
//! was computed at. Losing it loses nothing: a restart rebuilds it from redb.
//!
//! Cost: a build decodes every device record once (see the 10,000-device test below); a block
//! commit re-indexes only the device and CA keys in its write set (`O(k log n)` for `k` changed
//! records); a list query walks the smallest candidate set among the indexed filters.
//!
//! # Firmware (issue 4)
//!
//! The firmware fleet map lives in [`FirmwareIndex`] ([`FleetIndex::firmware`]), fed from the
//! same write sets under its own prefixes (`fw/installed/`, `fw/progress/`): each device's
//! attested release, the devices per release (exposure = union of the affected releases' sets),
//! and each rollout's per-device LwM2M progress.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use anyhow::Result;
use chipledger_state::model::{Attestation, CaRecord, DeviceRecord, DeviceRevocation};
use chipledger_state::store::WriteSet;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::{CaId, DeviceId, ID_BYTES};
use tracing::warn;

use crate::db::Db;
use crate::firmware_index::{FIRMWARE_PREFIXES, FirmwareIndex};

/// State-key prefix of device records (`chipledger_state::model::device_key`).
pub const DEVICE_PREFIX: &[u8] = b"device/";
/// State-key prefix of manufacturer CA records (`chipledger_state::model::ca_key`).
pub const CA_PREFIX: &[u8] = b"mca/";
/// Every state-key prefix the index follows.
pub const WATCHED_PREFIXES: [&[u8]; 2] = [DEVICE_PREFIX, CA_PREFIX];

/// Devices per list page when the caller names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Most devices in one list page.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Longest id-prefix text query: a whole device id in hex.
pub const MAX_ID_PREFIX_CHARS: usize = ID_BYTES * 2;

/// A bad query: the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetQueryError {
    #[error("limit must be 1..={MAX_LIST_LIMIT}, got {0}")]
    Limit(usize),
    #[error("status must be active, offered or revoked, got '{0}'")]
    Status(String),
    #[error("q is a hex device-id prefix of at most {MAX_ID_PREFIX_CHARS} characters, got '{0}'")]
    IdPrefix(String),
    #[error("after is a device id (40 hex characters), got '{0}'")]
    Cursor(String),
}

/// Where a device stands. Exclusive: revoked wins over a pending offer; `offered` means not
/// revoked with a transfer offer pending; `active` is neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceStatus {
    Active,
    Offered,
    Revoked,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 3] = [DeviceStatus::Active, DeviceStatus::Offered, DeviceStatus::Revoked];

    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Offered => "offered",
            DeviceStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Result<DeviceStatus, FleetQueryError> {
        DeviceStatus::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| FleetQueryError::Status(s.into()))
    }

    fn of(record: &DeviceRecord) -> DeviceStatus {
        match (&record.revoked, &record.offered_to) {
            (Some(_), _) => DeviceStatus::Revoked,
            (None, Some(_)) => DeviceStatus::Offered,
            (None, None) => DeviceStatus::Active,
        }
    }
}

/// The indexed view of one device (no certificate: `GET /v1/devices/{id}` serves the record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    pub id: DeviceId,
    pub model: u32,
    pub owner: String,
    pub manufacturer: String,
    pub ca: CaId,
    pub status: DeviceStatus,
    pub offered_to: Option<String>,
    pub revoked: Option<DeviceRevocation>,
    pub registered_height: u64,
    /// The latest accepted evidence (attested firmware version and measurement, with height).
    pub attested: Option<Attestation>,
    // Issue 4 adds the device's firmware fields here (see the module docs).
}

impl DeviceSummary {
    pub fn from_record(r: &DeviceRecord) -> DeviceSummary {
        DeviceSummary {
            id: r.id,
            model: r.model,
            owner: r.owner.clone(),
            manufacturer: r.manufacturer.clone(),
            ca: r.ca,
            status: DeviceStatus::of(r),
            offered_to: r.offered_to.clone(),
            revoked: r.revoked.clone(),
            registered_height: r.registered_height,
            attested: r.attestation.clone(),
        }
    }

    fn version(&self) -> Option<&str> {
        self.attested.as_ref().map(|a| a.swversion.as_str())
    }
}

/// A hex prefix of a device id, as nibbles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdPrefix(Vec<u8>);

impl IdPrefix {
    pub fn parse(s: &str) -> Result<IdPrefix, FleetQueryError> {
        let bad = || FleetQueryError::IdPrefix(s.chars().take(MAX_ID_PREFIX_CHARS + 1).collect());
        if s.len() > MAX_ID_PREFIX_CHARS {
            return Err(bad());
        }
        s.chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<Vec<u8>>>()
            .map(IdPrefix)
            .ok_or_else(bad)
    }

    pub fn matches(&self, id: &DeviceId) -> bool {
        self.0.iter().enumerate().all(|(i, nibble)| {
            let byte = id.0[i / 2];
            let have = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            have == *nibble
        })
    }
}

/// Parse a device id given as 40 hex characters.
pub fn parse_cursor(s: &str) -> Result<DeviceId, FleetQueryError> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| FleetQueryError::Cursor(s.chars().take(MAX_ID_PREFIX_CHARS + 1).collect()))
}

/// A list query: every `Some` filter must match; pages are in device-id order after `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFilter {
    pub model: Option<u32>,
    pub owner: Option<String>,
    pub manufacturer: Option<String>,
    pub status: Option<DeviceStatus>,
    /// Exact attested `swversion`.
    pub attested_version: Option<String>,
    pub id_prefix: Option<IdPrefix>,
    /// Cursor: the last id of the previous page.
    pub after: Option<DeviceId>,
    /// 1..=[`MAX_LIST_LIMIT`].
    pub limit: usize,
}

impl Default for DeviceFilter {
    fn default() -> Self {
        DeviceFilter {
            model: None,
            owner: None,
            manufacturer: None,
            status: None,
            attested_version: None,
            id_prefix: None,
            after: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

impl DeviceFilter {
    fn matches(&self, d: &DeviceSummary) -> bool {
        self.model.is_none_or(|m| d.model == m)
            && self.owner.as_ref().is_none_or(|o| &d.owner == o)
            && self.manufacturer.as_ref().is_none_or(|m| &d.manufacturer == m)
            && self.status.is_none_or(|s| d.status == s)
            && self.attested_version.as_deref().is_none_or(|v| d.version() == Some(v))
            && self.id_prefix.as_ref().is_none_or(|p| p.matches(&d.id))
    }
}

/// One page of a list query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceList {
    /// The finalized height the answer was computed at.
    pub height: u64,
    /// Devices matching the filters in all (regardless of the cursor).
    pub total: usize,
    pub devices: Vec<DeviceSummary>,
    /// The cursor for the next page; `None` on the last page.
    pub next_after: Option<DeviceId>,
}

/// Device counts, for the explorer's charts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetStats {
    pub height: u64,
    pub total: usize,
    pub by_model: BTreeMap<u32, usize>,
    pub by_owner: BTreeMap<String, usize>,
    pub by_manufacturer: BTreeMap<String, usize>,
    pub by_status: BTreeMap<DeviceStatus, usize>,
    /// By attested `swversion`; devices never attested are counted in `unattested`.
    pub by_attested_version: BTreeMap<String, usize>,
    pub unattested: usize,
    /// Devices (any status) whose manufacturer CA is revoked.
    pub untrusted: usize,
}

type IdSet = BTreeSet<DeviceId>;

/// The index. Only `link`/`unlink` touch the secondary maps, so they always agree with
/// `devices` (checked by `assert_consistent` in the tests).
#[derive(Debug, Default)]
pub struct FleetIndex {
    height: u64,
    devices: BTreeMap<DeviceId, DeviceSummary>,
    by_model: BTreeMap<u32, IdSet>,
    by_owner: BTreeMap<String, IdSet>,
    by_manufacturer: BTreeMap<String, IdSet>,
    by_status: BTreeMap<DeviceStatus, IdSet>,
    by_version: BTreeMap<String, IdSet>,
    revoked_cas: BTreeSet<CaId>,
    /// Installed firmware per device, devices per release, rollout progress (issue 4).
    firmware: FirmwareIndex,
    /// Records that did not decode (corrupt state: logged and left out, never fatal here).
    skipped: u64,
}

fn add<K: Ord + Clone>(map: &mut BTreeMap<K, IdSet>, key: &K, id: DeviceId) {
    map.entry(key.clone()).or_default().insert(id);
}

fn remove<K: Ord>(map: &mut BTreeMap<K, IdSet>, key: &K, id: &DeviceId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl FleetIndex {
    /// An empty index at `height`.
    pub fn new(height: u64) -> FleetIndex {
        FleetIndex {
            height,
            ..FleetIndex::default()
        }
    }

    /// Build from the finalized state in `db` (whose last block is `height`).
    pub fn load(db: &Db, height: u64) -> Result<FleetIndex> {
        let mut index = FleetIndex::new(height);
        db.for_each_state_prefixes(&WATCHED_PREFIXES, |k, v| index.apply_entry(k, Some(v)))?;
        db.for_each_state_prefixes(&FIRMWARE_PREFIXES, |k, v| index.firmware.apply_entry(k, Some(v)))?;
        Ok(index)
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Records that failed to decode and were left out.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    pub fn get(&self, id: &DeviceId) -> Option<&DeviceSummary> {
        self.devices.get(id)
    }

    pub fn ca_revoked(&self, ca: &CaId) -> bool {
        self.revoked_cas.contains(ca)
    }

    /// Apply the write set of the finalized block at `height` (only watched keys matter).
    pub fn apply_block(&mut self, height: u64, writes: &WriteSet) {
        assert!(
            height > self.height,
            "the index only moves forward ({} → {height})",
            self.height
        );
        for prefix in WATCHED_PREFIXES {
            let keys = writes.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
            for (k, v) in keys.take_while(|(k, _)| k.starts_with(prefix)) {
                self.apply_entry(k, v.as_deref());
            }
        }
        self.firmware.apply_writes(writes);
        self.height = height;
    }

    /// The firmware fleet map at [`FleetIndex::height`]: installed release per device, devices
    /// per release (exposure queries), rollout progress per device.
    pub fn firmware(&self) -> &FirmwareIndex {
        &self.firmware
    }

    /// Index one state entry (`None`: the key was deleted). Keys outside
    /// [`WATCHED_PREFIXES`] are ignored. The extension point for new record kinds.
    pub fn apply_entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        if let Some(hex_id) = key.strip_prefix(DEVICE_PREFIX) {
            self.apply_device(hex_id, value);
        } else if let Some(hex_id) = key.strip_prefix(CA_PREFIX) {
            self.apply_ca(hex_id, value);
        }
    }

    fn apply_device(&mut self, hex_id: &[u8], value: Option<&[u8]>) {
        let Some(id) = std::str::from_utf8(hex_id).ok().and_then(|s| parse_cursor(s).ok()) else {
            return self.skip(hex_id, "key is not a device id");
        };
        self.unlink(&id);
        let Some(bytes) = value else { return };
        match DeviceRecord::from_cbor(bytes, Limits::STATE) {
            // Paired with the writer: a record is stored under its own id.
            Ok(r) if r.id == id => self.link(DeviceSummary::from_record(&r)),
            Ok(_) => self.skip(hex_id, "record id differs from its key"),
            Err(e) => self.skip(hex_id, &e.to_string()),
        }
    }

    fn apply_ca(&mut self, hex_id: &[u8], value: Option<&[u8]>) {
        let Some(bytes) = value else {
            // CA records are never deleted today; a deletion forgets the revocation too.
            if let Some(id) = hex::decode(hex_id).ok().and_then(|b| b.try_into().ok()) {
                self.revoked_cas.remove(&CaId(id));
            }
            return;
        };
        match CaRecord::from_cbor(bytes, Limits::STATE) {
            Ok(ca) if ca.revoked.is_some() => {
                self.revoked_cas.insert(ca.id);
            }
            Ok(ca) => {
                self.revoked_cas.remove(&ca.id);
            }
            Err(e) => self.skip(hex_id, &e.to_string()),
        }
    }

    fn skip(&mut self, key: &[u8], why: &str) {
        self.skipped += 1;
        warn!(key = %String::from_utf8_lossy(key), why, "fleet index: record left out");
    }

    fn link(&mut self, d: DeviceSummary) {
        let id = d.id;
        add(&mut self.by_model, &d.model, id);
        add(&mut self.by_owner, &d.owner, id);
        add(&mut self.by_manufacturer, &d.manufacturer, id);
        add(&mut self.by_status, &d.status, id);
        if let Some(v) = d.version() {
            add(&mut self.by_version, &v.to_string(), id);
        }
        self.devices.insert(id, d);
    }

    fn unlink(&mut self, id: &DeviceId) {
        let Some(d) = self.devices.remove(id) else { return };
        remove(&mut self.by_model, &d.model, id);
        remove(&mut self.by_owner, &d.owner, id);
        remove(&mut self.by_manufacturer, &d.manufacturer, id);
        remove(&mut self.by_status, &d.status, id);
        if let Some(v) = d.version() {
            remove(&mut self.by_version, &v.to_string(), id);
        }
    }

    /// The smallest indexed set that every match must be in (`None`: no indexed filter).
    /// `Some(None)`: an indexed filter names a value no device has.
    fn candidates(&self, f: &DeviceFilter) -> Option<Option<&IdSet>> {
        let picks = [
            f.model.map(|m| self.by_model.get(&m)),
            f.owner.as_ref().map(|o| self.by_owner.get(o)),
            f.manufacturer.as_ref().map(|m| self.by_manufacturer.get(m)),
            f.status.map(|s| self.by_status.get(&s)),
            f.attested_version.as_ref().map(|v| self.by_version.get(v)),
        ];
        picks.into_iter().flatten().min_by_key(|set| set.map_or(0, |s| s.len()))
    }

    /// One page of the devices matching `f`, with the total count and the height.
    pub fn list(&self, f: &DeviceFilter) -> Result<DeviceList, FleetQueryError> {
        if f.limit == 0 || f.limit > MAX_LIST_LIMIT {
            return Err(FleetQueryError::Limit(f.limit));
        }
        let ids: Box<dyn Iterator<Item = &DeviceId>> = match self.candidates(f) {
            None => Box::new(self.devices.keys()),
            Some(None) => Box::new(std::iter::empty()),
            Some(Some(set)) => Box::new(set.iter()),
        };
        let mut out = DeviceList {
            height: self.height,
            total: 0,
            devices: Vec::new(),
            next_after: None,
        };
        for id in ids {
            let d = &self.devices[id];
            if !f.matches(d) {
                continue;
            }
            out.total += 1;
            if f.after.is_none_or(|a| *id > a) && out.devices.len() < f.limit {
                out.devices.push(d.clone());
            } else if out.devices.len() == f.limit && out.next_after.is_none() {
                // A further match exists beyond this page.
                out.next_after = out.devices.last().map(|d| d.id);
            }
        }
        Ok(out)
    }

    /// Counts over the whole fleet.
    pub fn stats(&self) -> FleetStats {
        let by_attested_version: BTreeMap<String, usize> =
            self.by_version.iter().map(|(k, s)| (k.clone(), s.len())).collect();
        let attested: usize = by_attested_version.values().sum();
        FleetStats {
            height: self.height,
            total: self.devices.len(),
            by_model: self.by_model.iter().map(|(k, s)| (*k, s.len())).collect(),
            by_owner: self.by_owner.iter().map(|(k, s)| (k.clone(), s.len())).collect(),
            by_manufacturer: self.by_manufacturer.iter().map(|(k, s)| (k.clone(), s.len())).collect(),
            by_status: self.by_status.iter().map(|(k, s)| (*k, s.len())).collect(),
            by_attested_version,
            unattested: self.devices.len() - attested,
            untrusted: self.devices.values().filter(|d| self.ca_revoked(&d.ca)).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chipledger_state::model::{
        Attestation, DeviceRevocation, ca_key, device_history_key, device_key, owner_index_key,
    };
    use chipledger_types::cbor::Encode;
    use chipledger_types::merkle::Frontier;
    use sha2::{Digest, Sha256};

    use chipledger_types::device_tx::RevokeReason;

    use super::*;
    use crate::db::BlockCommit;

    fn alias_key() -> chipledger_device::key::DevicePublicKey {
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().into()
    }

    const CA_A: CaId = CaId([0xca; ID_BYTES]);

    /// A distinct, well-spread device id for `n`.
    fn id(n: u32) -> DeviceId {
        let h = Sha256::digest(n.to_be_bytes());
        DeviceId(h[..ID_BYTES].try_into().unwrap())
    }

    fn record(n: u32, model: u32, owner: &str, manufacturer: &str) -> DeviceRecord {
        DeviceRecord {
            id: id(n),
            manufacturer: manufacturer.into(),
            ca: CA_A,
            model,
            deviceid_cert_der: vec![0x30; 400],
            owner: owner.into(),
            offered_to: None,
            registered_height: 1,
            revoked: None,
            attestation: None,
            challenge_seed: [7; 32],
        }
    }

    /// The write set a transaction changing `records` leaves: the device records plus the
    /// history and owner-index keys the state machine writes too (which the index ignores).
    fn writes(records: &[&DeviceRecord]) -> WriteSet {
        let mut w = WriteSet::new();
        for r in records {
            w.insert(device_key(&r.id), Some(r.to_cbor()));
            w.insert(device_history_key(&r.id), Some(vec![0x80]));
            w.insert(owner_index_key(&r.owner), Some(vec![0x80]));
        }
        w
    }

    fn ids(list: &DeviceList) -> Vec<DeviceId> {
        list.devices.iter().map(|d| d.id).collect()
    }

    fn sorted(ns: &[u32]) -> Vec<DeviceId> {
        let mut v: Vec<DeviceId> = ns.iter().map(|n| id(*n)).collect();
        v.sort();
        v
    }

    /// Every secondary map agrees with the device summaries, and nothing is left dangling.
    fn assert_consistent(ix: &FleetIndex) {
        let check = |name: &str, total: usize, ok: &dyn Fn(&DeviceSummary) -> bool, expected: usize| {
            assert_eq!(total, expected, "{name}: set sizes add up to the number of devices");
            assert!(ix.devices.values().all(|d| ok(d) || name == "by_version"));
        };
        let sum = |m: &dyn Fn() -> Vec<usize>| m().iter().sum::<usize>();
        let n = ix.devices.len();
        check(
            "by_model",
            sum(&|| ix.by_model.values().map(|s| s.len()).collect()),
            &|d| ix.by_model[&d.model].contains(&d.id),
            n,
        );
        check(
            "by_owner",
            sum(&|| ix.by_owner.values().map(|s| s.len()).collect()),
            &|d| ix.by_owner[&d.owner].contains(&d.id),
            n,
        );
        check(
            "by_status",
            sum(&|| ix.by_status.values().map(|s| s.len()).collect()),
            &|d| ix.by_status[&d.status].contains(&d.id),
            n,
        );
        check(
            "by_manufacturer",
            sum(&|| ix.by_manufacturer.values().map(|s| s.len()).collect()),
            &|d| ix.by_manufacturer[&d.manufacturer].contains(&d.id),
            n,
        );
        let attested = ix.devices.values().filter(|d| d.attested.is_some()).count();
        check(
            "by_version",
            sum(&|| ix.by_version.values().map(|s| s.len()).collect()),
            &|_| true,
            attested,
        );
        for (v, set) in &ix.by_version {
            assert!(set.iter().all(|i| ix.devices[i].version() == Some(v.as_str())));
        }
        for m in [ix.by_model.len(), ix.by_owner.len(), ix.by_status.len()] {
            assert!(m <= n, "no empty sets are kept");
        }
    }

    /// Register → offer → accept → attest → revoke, each as the write set of a finalized
    /// block: the summary, the status and every map follow.
    #[test]
    fn follows_register_transfer_attest_revoke() {
        let mut ix = FleetIndex::new(0);
        let mut d = record(1, 150, "city", "maker");
        ix.apply_block(1, &writes(&[&d]));
        assert_eq!(ix.get(&d.id).map(|s| s.status), Some(DeviceStatus::Active));
        assert_eq!(ix.height(), 1);

        d.offered_to = Some("vendor".into());
        ix.apply_block(2, &writes(&[&d]));
        assert_eq!(ix.get(&d.id).map(|s| s.status), Some(DeviceStatus::Offered));
        assert_consistent(&ix);

        d.offered_to = None;
        d.owner = "vendor".into();
        ix.apply_block(3, &writes(&[&d]));
        let owned = |ix: &FleetIndex, o: &str| ix.stats().by_owner.get(o).copied();
        assert_eq!((owned(&ix, "city"), owned(&ix, "vendor")), (None, Some(1)));

        d.attestation = Some(Attestation {
            height: 4,
            swname: "fw".into(),
            swversion: "1.0.0".into(),
            measurement: vec![1; 32],
            alias_fwid_sha256: vec![1; 32],
            alias_public_key: alias_key(),
        });
        ix.apply_block(4, &writes(&[&d]));
        let s = ix.stats();
        assert_eq!((s.by_attested_version.get("1.0.0"), s.unattested), (Some(&1), 0));

        d.attestation.as_mut().unwrap().swversion = "1.1.0".into();
        d.revoked = Some(DeviceRevocation {
            height: 5,
            reason: RevokeReason::Compromised,
            by: "vendor".into(),
        });
        ix.apply_block(5, &writes(&[&d]));
        let got = ix.get(&d.id).unwrap();
        assert_eq!(got.status, DeviceStatus::Revoked);
        assert_eq!(
            got.revoked.as_ref().map(|r| (r.height, r.reason)),
            Some((5, RevokeReason::Compromised))
        );
        let s = ix.stats();
        assert_eq!(s.by_attested_version.keys().collect::<Vec<_>>(), ["1.1.0"]);
        assert_eq!(s.by_status.get(&DeviceStatus::Revoked), Some(&1));
        assert_eq!(s.by_status.get(&DeviceStatus::Active), None);
        assert_consistent(&ix);
    }

    /// A deleted record leaves every map; keys outside the watched prefixes change nothing.
    #[test]
    fn deletion_and_foreign_keys() {
        let mut ix = FleetIndex::new(0);
        let (a, b) = (record(1, 10, "city", "maker"), record(2, 10, "city", "maker"));
        ix.apply_block(1, &writes(&[&a, &b]));
        let mut w = WriteSet::new();
        w.insert(device_key(&a.id), None);
        w.insert(b"device-history/zz".to_vec(), Some(vec![1, 2, 3]));
        w.insert(b"org/device".to_vec(), Some(vec![0xff]));
        ix.apply_block(2, &w);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.stats().by_model.get(&10), Some(&1));
        assert_eq!(ix.skipped(), 0, "history and org keys are not device records");
        assert_consistent(&ix);
        // A corrupt record is left out and counted, never fatal.
        let mut bad = WriteSet::new();
        bad.insert(device_key(&b.id), Some(vec![0xff]));
        ix.apply_block(3, &bad);
        assert_eq!((ix.len(), ix.skipped()), (0, 1));
    }

    /// A revoked manufacturer CA marks its devices untrusted (status is unchanged).
    #[test]
    fn revoked_ca_counts_untrusted() {
        let mut ix = FleetIndex::new(0);
        ix.apply_block(1, &writes(&[&record(1, 10, "city", "maker")]));
        let mut ca = CaRecord {
            id: CA_A,
            org: "maker".into(),
            cert_der: vec![0x30; 10],
            models: Vec::new(),
            added_height: 1,
            revoked: None,
        };
        let mut w = WriteSet::new();
        w.insert(ca_key(&CA_A), Some(ca.to_cbor()));
        ix.apply_block(2, &w);
        assert_eq!(ix.stats().untrusted, 0);
        ca.revoked = Some((3, "key leaked".into()));
        w.insert(ca_key(&CA_A), Some(ca.to_cbor()));
        ix.apply_block(3, &w);
        assert_eq!((ix.stats().untrusted, ix.ca_revoked(&CA_A)), (1, true));
    }

    fn fleet() -> FleetIndex {
        let mut ix = FleetIndex::new(0);
        let mut recs = Vec::new();
        for n in 0..30u32 {
            let mut r = record(n, 100 + n % 3, ["city", "vendor"][(n % 2) as usize], "maker");
            if n % 5 == 0 {
                r.revoked = Some(DeviceRevocation {
                    height: 1,
                    reason: RevokeReason::Lost,
                    by: "city".into(),
                });
            }
            if n == 7 {
                r.offered_to = Some("audit".into());
            }
            if n % 4 == 0 {
                r.attestation = Some(Attestation {
                    height: 1,
                    swname: "fw".into(),
                    swversion: format!("1.{}", n % 8 / 4),
                    measurement: vec![n as u8],
                    alias_fwid_sha256: Vec::new(),
                    alias_public_key: alias_key(),
                });
            }
            recs.push(r);
        }
        ix.apply_block(1, &writes(&recs.iter().collect::<Vec<_>>()));
        ix
    }

    /// Each filter (and combinations) against the expected ids, computed by hand from `fleet`.
    #[test]
    fn filters_match_by_hand() {
        let ix = fleet();
        assert_consistent(&ix);
        let by = |f: DeviceFilter| ix.list(&f).unwrap();
        let all = |pred: &dyn Fn(u32) -> bool| sorted(&(0..30).filter(|n| pred(*n)).collect::<Vec<_>>());
        let cases: Vec<(DeviceFilter, Vec<DeviceId>)> = vec![
            (DeviceFilter::default(), all(&|_| true)),
            (
                DeviceFilter {
                    model: Some(101),
                    ..Default::default()
                },
                all(&|n| n % 3 == 1),
            ),
            (
                DeviceFilter {
                    model: Some(999),
                    ..Default::default()
                },
                vec![],
            ),
            (
                DeviceFilter {
                    owner: Some("vendor".into()),
                    ..Default::default()
                },
                all(&|n| n % 2 == 1),
            ),
            (
                DeviceFilter {
                    status: Some(DeviceStatus::Revoked),
                    ..Default::default()
                },
                all(&|n| n % 5 == 0),
            ),
            (
                DeviceFilter {
                    status: Some(DeviceStatus::Offered),
                    ..Default::default()
                },
                sorted(&[7]),
            ),
            (
                DeviceFilter {
                    status: Some(DeviceStatus::Active),
                    ..Default::default()
                },
                all(&|n| n % 5 != 0 && n != 7),
            ),
            (
                DeviceFilter {
                    attested_version: Some("1.1".into()),
                    ..Default::default()
                },
                all(&|n| n % 8 == 4),
            ),
            (
                DeviceFilter {
                    model: Some(100),
                    owner: Some("city".into()),
                    status: Some(DeviceStatus::Revoked),
                    ..Default::default()
                },
                all(&|n| n % 3 == 0 && n % 2 == 0 && n % 5 == 0),
            ),
            (
                DeviceFilter {
                    manufacturer: Some("other".into()),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (f, expected) in cases {
            let got = by(f.clone());
            assert_eq!(ids(&got), expected, "filter {f:?}");
            assert_eq!((got.total, got.height, got.next_after), (expected.len(), 1, None));
        }
        // Id prefix: the first hex characters of one id find it (and any sharing them).
        let target = id(12).to_string();
        let f = DeviceFilter {
            id_prefix: Some(IdPrefix::parse(&target[..6].to_uppercase()).unwrap()),
            ..Default::default()
        };
        assert!(ids(&by(f)).contains(&id(12)));
        let f = DeviceFilter {
            id_prefix: Some(IdPrefix::parse(&target).unwrap()),
            ..Default::default()
        };
        assert_eq!(ids(&by(f)), vec![id(12)]);
    }

    /// Cursor pagination visits every match once, in id order, with a stable total.
    #[test]
    fn pagination_by_cursor() {
        let ix = fleet();
        for (limit, status) in [(1, None), (7, None), (10, Some(DeviceStatus::Active)), (1000, None)] {
            let mut f = DeviceFilter {
                limit,
                status,
                ..Default::default()
            };
            let (mut seen, mut pages) = (Vec::new(), 0);
            loop {
                let page = ix.list(&f).unwrap();
                assert!(page.devices.len() <= limit);
                seen.extend(ids(&page));
                pages += 1;
                match page.next_after {
                    Some(after) => {
                        assert_eq!(Some(after), page.devices.last().map(|d| d.id));
                        f.after = Some(after);
                    }
                    None => {
                        assert_eq!(seen.len(), page.total, "limit {limit}");
                        break;
                    }
                }
            }
            let expected = ix
                .list(&DeviceFilter {
                    limit: MAX_LIST_LIMIT,
                    status,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(seen, ids(&expected), "limit {limit}");
            assert_eq!(pages, seen.len().div_ceil(limit).max(1), "limit {limit}");
        }
    }

    /// Bad query input is a typed error, never a panic.
    #[test]
    fn bad_queries_are_typed_errors() {
        let ix = fleet();
        for limit in [0, MAX_LIST_LIMIT + 1] {
            let f = DeviceFilter {
                limit,
                ..Default::default()
            };
            assert_eq!(ix.list(&f), Err(FleetQueryError::Limit(limit)));
        }
        assert!(matches!(DeviceStatus::parse("gone"), Err(FleetQueryError::Status(_))));
        for q in ["xyz", "0g", &"a".repeat(MAX_ID_PREFIX_CHARS + 1)] {
            assert!(matches!(IdPrefix::parse(q), Err(FleetQueryError::IdPrefix(_))), "{q}");
        }
        for c in ["", "00", &"0".repeat(42), "zz"] {
            assert!(matches!(parse_cursor(c), Err(FleetQueryError::Cursor(_))), "{c}");
        }
        assert_eq!(IdPrefix::parse("").map(|p| p.matches(&id(1))), Ok(true));
    }

    /// 10,000 device records in redb: the start-up build, a filtered page, the stats, and one
    /// block commit's update of 1,000 records. Timings are printed (run with `--nocapture`);
    /// only the counts are asserted (no wall-clock assertions).
    #[test]
    fn ten_thousand_devices_build_and_query() {
        const N: u32 = 10_000;
        let dir = std::env::temp_dir().join(format!("chipledger-fleet-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(&dir.join("ledger.redb")).unwrap();
        let recs: Vec<DeviceRecord> = (0..N)
            .map(|n| record(n, 100 + n % 10, &format!("org{}", n % 7), "maker"))
            .collect();
        let w = writes(&recs.iter().collect::<Vec<_>>());
        let frontier = Frontier::new();
        db.commit_block(&BlockCommit {
            height: 0,
            digest: [0; 32],
            block: b"",
            writes: &w,
            tx_hashes: &[],
            first_leaf: 0,
            log_nodes: &[],
            frontier: &frontier,
        })
        .unwrap();

        let t = Instant::now();
        let mut ix = FleetIndex::load(&db, 0).unwrap();
        let build = t.elapsed();
        assert_eq!(ix.len(), N as usize);

        let t = Instant::now();
        let page = ix
            .list(&DeviceFilter {
                model: Some(103),
                owner: Some("org3".into()),
                ..Default::default()
            })
            .unwrap();
        let query = t.elapsed();
        let expected = (0..N).filter(|n| n % 10 == 3 && n % 7 == 3).count();
        assert_eq!(
            (page.total, page.devices.len()),
            (expected, expected.min(DEFAULT_LIST_LIMIT))
        );

        let t = Instant::now();
        let stats = ix.stats();
        let stats_took = t.elapsed();
        assert_eq!(
            (stats.total, stats.by_model.len(), stats.by_owner.len()),
            (N as usize, 10, 7)
        );

        let moved: Vec<DeviceRecord> = recs[..1000]
            .iter()
            .map(|r| DeviceRecord {
                owner: "new-owner".into(),
                ..r.clone()
            })
            .collect();
        let block = writes(&moved.iter().collect::<Vec<_>>());
        let t = Instant::now();
        ix.apply_block(1, &block);
        let update = t.elapsed();
        assert_eq!(ix.stats().by_owner.get("new-owner"), Some(&1000));
        assert_consistent(&ix);
        eprintln!(
            "fleet index, {N} devices: build {build:?}, filtered page {query:?}, stats {stats_took:?}, \
             1000-record block update {update:?}"
        );
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
