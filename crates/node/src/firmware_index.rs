//! The firmware part of the node-local fleet index (issue 4): each device's installed release
//! (from the fleet version map, `fw/installed/<device>`), the devices per release, and each
//! rollout's per-device LwM2M progress (`fw/progress/<rollout>/<device>`).
//!
//! Like [`crate::fleet_index`] it is **derived from finalized state only**, built at start from
//! redb and advanced from each finalized block's write set under the executor lock, never
//! consulted by consensus. The exposure query ("which devices run a release affected by CVE-X")
//! unions the per-release device sets of the CVE's affected releases: `O(answer)` after the one
//! state read of the CVE record, so it stays far below the 50 ms budget at 10,000 devices
//! (`chipledger bench exposure`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chipledger_state::firmware::model::DeviceProgress;
use chipledger_state::store::WriteSet;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{InstalledFirmware, ReleaseId};
use chipledger_types::tx::TxHash;
use tracing::warn;

/// State-key prefix of the fleet version map (`chipledger_types::firmware_tx::installed_key`).
pub const INSTALLED_PREFIX: &[u8] = b"fw/installed/";
/// State-key prefix of rollout progress (`chipledger_state::firmware::model::progress_key`).
pub const PROGRESS_PREFIX: &[u8] = b"fw/progress/";
/// Every state-key prefix the firmware index follows.
pub const FIRMWARE_PREFIXES: [&[u8]; 2] = [INSTALLED_PREFIX, PROGRESS_PREFIX];

type IdSet = BTreeSet<DeviceId>;

/// The firmware fleet map. Only `link`/`unlink` touch `by_release`, so it always agrees with
/// `installed`.
#[derive(Debug, Default)]
pub struct FirmwareIndex {
    installed: BTreeMap<DeviceId, InstalledFirmware>,
    by_release: BTreeMap<ReleaseId, IdSet>,
    progress: BTreeMap<TxHash, BTreeMap<DeviceId, DeviceProgress>>,
    /// Records that did not decode (corrupt state: logged and left out).
    skipped: u64,
}

/// One exposed device: what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedDevice {
    pub device: DeviceId,
    pub installed: InstalledFirmware,
}

fn parse_hex<const N: usize>(hex_id: &[u8]) -> Option<[u8; N]> {
    let text = std::str::from_utf8(hex_id).ok()?;
    hex::decode(text).ok()?.try_into().ok()
}

impl FirmwareIndex {
    /// Index one state entry (`None`: deleted); keys outside [`FIRMWARE_PREFIXES`] are ignored.
    pub fn apply_entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        if let Some(rest) = key.strip_prefix(INSTALLED_PREFIX) {
            self.apply_installed(rest, value);
        } else if let Some(rest) = key.strip_prefix(PROGRESS_PREFIX) {
            self.apply_progress(rest, value);
        }
    }

    /// Apply every firmware entry of a finalized block's write set.
    pub fn apply_writes(&mut self, writes: &WriteSet) {
        for prefix in FIRMWARE_PREFIXES {
            let keys = writes.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
            for (k, v) in keys.take_while(|(k, _)| k.starts_with(prefix)) {
                self.apply_entry(k, v.as_deref());
            }
        }
    }

    fn skip(&mut self, key: &[u8], why: &str) {
        self.skipped += 1;
        warn!(key = %String::from_utf8_lossy(key), why, "firmware index: record left out");
    }

    fn apply_installed(&mut self, hex_id: &[u8], value: Option<&[u8]>) {
        let Some(id) = parse_hex::<20>(hex_id).map(DeviceId) else {
            return self.skip(hex_id, "bad device id in key");
        };
        self.unlink(&id);
        let Some(bytes) = value else { return };
        match InstalledFirmware::from_cbor(bytes, Limits::STATE) {
            Ok(rec) => self.link(id, rec),
            Err(e) => self.skip(hex_id, &e.to_string()),
        }
    }

    fn apply_progress(&mut self, rest: &[u8], value: Option<&[u8]>) {
        let mut parts = rest.splitn(2, |b| *b == b'/');
        let (Some(r), Some(d)) = (parts.next(), parts.next()) else {
            return self.skip(rest, "bad progress key");
        };
        let (Some(rollout), Some(device)) = (parse_hex::<32>(r).map(TxHash), parse_hex::<20>(d).map(DeviceId)) else {
            return self.skip(rest, "bad progress key");
        };
        let Some(bytes) = value else {
            if let Some(m) = self.progress.get_mut(&rollout) {
                m.remove(&device);
            }
            return;
        };
        match DeviceProgress::from_cbor(bytes, Limits::STATE) {
            Ok(p) => {
                self.progress.entry(rollout).or_default().insert(device, p);
            }
            Err(e) => self.skip(rest, &e.to_string()),
        }
    }

    fn link(&mut self, id: DeviceId, rec: InstalledFirmware) {
        self.by_release.entry(rec.release).or_default().insert(id);
        self.installed.insert(id, rec);
    }

    fn unlink(&mut self, id: &DeviceId) {
        let Some(old) = self.installed.remove(id) else { return };
        if let Some(set) = self.by_release.get_mut(&old.release) {
            set.remove(id);
            if set.is_empty() {
                self.by_release.remove(&old.release);
            }
        }
    }

    /// What `device` runs, by its last attested install.
    pub fn installed(&self, device: &DeviceId) -> Option<&InstalledFirmware> {
        self.installed.get(device)
    }

    /// Devices with an attested install.
    pub fn installed_count(&self) -> usize {
        self.installed.len()
    }

    /// Devices running `release`, in id order.
    pub fn devices_of_release(&self, release: &ReleaseId) -> impl Iterator<Item = &DeviceId> {
        self.by_release.get(release).into_iter().flatten()
    }

    /// Devices per release.
    pub fn release_counts(&self) -> BTreeMap<ReleaseId, usize> {
        self.by_release.iter().map(|(r, s)| (*r, s.len())).collect()
    }

    /// Exactly the devices whose installed release is in `affected`, in device-id order.
    pub fn exposed(&self, affected: &[ReleaseId]) -> Vec<ExposedDevice> {
        let mut ids: Vec<&DeviceId> = affected.iter().flat_map(|r| self.devices_of_release(r)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|d| {
                self.installed.get(d).map(|rec| ExposedDevice {
                    device: *d,
                    installed: rec.clone(),
                })
            })
            .collect()
    }

    /// The latest progress report of every device in `rollout`, in device-id order.
    pub fn rollout_progress(&self, rollout: &TxHash) -> Vec<(DeviceId, DeviceProgress)> {
        self.progress
            .get(rollout)
            .map(|m| m.iter().map(|(d, p)| (*d, p.clone())).collect())
            .unwrap_or_default()
    }

    /// Records that failed to decode and were left out.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_types::cbor::Encode;
    use chipledger_types::firmware_tx::installed_key;

    fn installed(release: u8, height: u64) -> InstalledFirmware {
        InstalledFirmware {
            release: ReleaseId([release; 32]),
            version: format!("1.{release}.0"),
            security_version: release as u64,
            height,
            tx: TxHash([height as u8; 32]),
        }
    }

    fn write(ix: &mut FirmwareIndex, device: u8, rec: Option<InstalledFirmware>) {
        let mut w = WriteSet::new();
        w.insert(installed_key(&DeviceId([device; 20])), rec.map(|r| r.to_cbor()));
        w.insert(b"device/unrelated".to_vec(), Some(vec![1]));
        ix.apply_writes(&w);
    }

    /// Installs move a device between releases; exposure is exactly the affected releases' devices.
    #[test]
    fn installs_move_devices_between_releases_and_exposure_is_exact() {
        let mut ix = FirmwareIndex::default();
        write(&mut ix, 1, Some(installed(1, 1)));
        write(&mut ix, 2, Some(installed(1, 1)));
        write(&mut ix, 3, Some(installed(2, 1)));
        write(&mut ix, 2, Some(installed(3, 2)));
        let ids = |v: Vec<ExposedDevice>| v.into_iter().map(|e| e.device.0[0]).collect::<Vec<_>>();
        assert_eq!(ids(ix.exposed(&[ReleaseId([1; 32])])), vec![1]);
        assert_eq!(ids(ix.exposed(&[ReleaseId([1; 32]), ReleaseId([2; 32])])), vec![1, 3]);
        assert_eq!(ids(ix.exposed(&[ReleaseId([9; 32])])), Vec::<u8>::new());
        assert_eq!(ix.release_counts().get(&ReleaseId([3; 32])), Some(&1));
        write(&mut ix, 2, None);
        assert_eq!(ix.installed_count(), 2);
        assert!(!ix.release_counts().contains_key(&ReleaseId([3; 32])));
        assert_eq!(ix.skipped(), 0);
    }

    /// A record that does not decode is counted and left out, never fatal.
    #[test]
    fn corrupt_records_are_skipped() {
        let mut ix = FirmwareIndex::default();
        ix.apply_entry(&installed_key(&DeviceId([1; 20])), Some(&[0xff]));
        ix.apply_entry(b"fw/progress/zz/yy", Some(&[0x80]));
        assert_eq!((ix.installed_count(), ix.skipped()), (0, 2));
    }
}
