//! A faulty disk under a validator's redb database: a [`redb::StorageBackend`] over the real
//! file that, once armed, fails at a chosen write in one of two ways.
//!
//! - **Write error** (`EIO`): the write does not happen and every later write or sync fails,
//!   as a disk that went away. The page cache keeps what was written before.
//! - **Power loss**: the write lands only in part (a torn write: a prefix of it), and each write
//!   since the last `sync_data` is independently lost or kept (the file is left
//!   as if only the kept ones, in order, had reached it), as after a power cut with unsynced
//!   pages in flight. Every later write or sync fails.
//!
//! Either way the validator is then crashed and reopened over the plain file; redb must recover
//! its last durable commit and the executor must check that against its tip header. Reads keep
//! working after the fault (the live process only ever reads pages of its last good commit).

use crate::faults::mix;
use redb::StorageBackend;
use redb::backends::FileBackend;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the armed disk fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    WriteError,
    PowerLoss,
}

/// What one disk fault did (for the seed's report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskTrip {
    /// Bytes of the failing write that landed (power loss; 0 for a write error).
    pub torn_bytes: usize,
    /// Of that write's length.
    pub write_len: usize,
    /// Unsynced earlier writes, and how many of them were lost.
    pub unsynced: usize,
    pub lost: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Fail at this many more writes (1 = the next one).
    armed: Option<(u64, DiskFault, u64)>,
    /// Writes since the last sync: offset, the bytes they overwrote and the bytes they wrote.
    unsynced: Vec<(u64, Vec<u8>, Vec<u8>)>,
    tripped: Option<DiskTrip>,
}

/// The switch the simulation holds for one validator's disk (shared with its backend).
#[derive(Clone, Debug, Default)]
pub struct DiskControl(Arc<Mutex<State>>);

impl DiskControl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the `after_writes`th write from now (≥ 1) with `fault`; `seed` decides the torn
    /// length and which unsynced writes a power loss drops.
    pub fn arm(&self, after_writes: u64, fault: DiskFault, seed: u64) {
        let mut s = self.lock();
        s.armed = Some((after_writes.max(1), fault, seed));
    }

    /// What the fault did, once it happened.
    pub fn tripped(&self) -> Option<DiskTrip> {
        self.lock().tripped
    }

    /// A healthy disk again (before the validator reopens its file).
    pub fn reset(&self) {
        *self.lock() = State::default();
    }
}

/// The backend: the real file through redb's own [`FileBackend`], plus a second handle on the
/// same file to read old bytes and restore them on power loss.
#[derive(Debug)]
pub struct FaultyDisk {
    inner: FileBackend,
    raw: File,
    control: DiskControl,
}

fn dead() -> io::Error {
    io::Error::other("simulated disk fault: the disk is gone")
}

impl FaultyDisk {
    /// Opens (or creates) `path` for redb, through `control`.
    pub fn open(path: &std::path::Path, control: DiskControl) -> io::Result<FaultyDisk> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let raw = file.try_clone()?;
        let inner = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(FaultyDisk { inner, raw, control })
    }

    /// The bytes at `offset..offset+len` now (zeros past the end of the file).
    fn old_bytes(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut old = vec![0u8; len];
        let size = self.raw.metadata()?.len();
        if offset < size {
            let n = ((size - offset) as usize).min(len);
            self.raw.read_exact_at(&mut old[..n], offset)?;
        }
        Ok(old)
    }

    /// The power cut at this write: part of it lands, and each unsynced write is lost or kept.
    fn lose_power(&self, s: &mut State, offset: u64, data: &[u8], seed: u64) -> io::Result<DiskTrip> {
        let torn = (mix(seed ^ 0x7041) % (data.len() as u64 + 1)) as usize;
        // Back to the last synced state, then replay, in order, the writes that made it.
        for (at, old, _) in s.unsynced.iter().rev() {
            self.raw.write_all_at(old, *at)?;
        }
        let mut lost = 0;
        for (i, (at, _, new)) in s.unsynced.iter().enumerate() {
            if mix(seed ^ (i as u64 + 1)).is_multiple_of(2) {
                lost += 1;
            } else {
                self.raw.write_all_at(new, *at)?;
            }
        }
        self.raw.write_all_at(&data[..torn], offset)?;
        Ok(DiskTrip {
            torn_bytes: torn,
            write_len: data.len(),
            unsynced: s.unsynced.len(),
            lost,
        })
    }
}

impl StorageBackend for FaultyDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.control.lock().tripped.is_some() {
            return Err(dead());
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut s = self.control.lock();
        if s.tripped.is_some() {
            return Err(dead());
        }
        self.inner.sync_data()?;
        s.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = self.control.lock();
        if s.tripped.is_some() {
            return Err(dead());
        }
        if let Some((left, fault, seed)) = s.armed {
            if left > 1 {
                s.armed = Some((left - 1, fault, seed));
            } else {
                s.armed = None;
                let trip = match fault {
                    DiskFault::WriteError => DiskTrip {
                        write_len: data.len(),
                        unsynced: s.unsynced.len(),
                        ..DiskTrip::default()
                    },
                    DiskFault::PowerLoss => self.lose_power(&mut s, offset, data, seed)?,
                };
                s.tripped = Some(trip);
                return Err(io::Error::other(format!("simulated {fault:?}")));
            }
        }
        let old = self.old_bytes(offset, data.len())?;
        self.inner.write(offset, data)?;
        s.unsynced.push((offset, old, data.to_vec()));
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dir: &std::path::Path) -> (FaultyDisk, DiskControl) {
        let control = DiskControl::default();
        (FaultyDisk::open(&dir.join("f"), control.clone()).unwrap(), control)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("chipledger-sim-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn power_loss_keeps_synced_bytes_and_tears_the_failing_write() {
        let dir = scratch("power");
        let (d, control) = disk(&dir);
        d.set_len(64).unwrap();
        d.write(0, &[1; 16]).unwrap();
        d.sync_data().unwrap();
        d.write(16, &[2; 16]).unwrap();
        control.arm(1, DiskFault::PowerLoss, 7);
        assert!(d.write(32, &[3; 16]).is_err());
        let trip = control.tripped().expect("tripped");
        assert_eq!((trip.unsynced, trip.write_len), (1, 16));
        assert!(
            d.write(48, &[4; 1]).is_err() && d.sync_data().is_err(),
            "the disk stays dead"
        );
        let bytes = std::fs::read(dir.join("f")).unwrap();
        assert_eq!(&bytes[..16], &[1; 16], "synced bytes survive");
        let kept = bytes[16..32] == [2; 16];
        assert!(
            kept || bytes[16..32] == [0; 16],
            "an unsynced write is kept or lost whole"
        );
        assert_eq!(usize::from(!kept), trip.lost);
        assert!(bytes[32..32 + trip.torn_bytes].iter().all(|&b| b == 3));
        assert!(bytes[32 + trip.torn_bytes..48].iter().all(|&b| b == 0));
        assert!(bytes[48..].iter().all(|&b| b == 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_error_writes_nothing_and_counts_down() {
        let dir = scratch("eio");
        let (d, control) = disk(&dir);
        d.set_len(8).unwrap();
        control.arm(2, DiskFault::WriteError, 1);
        d.write(0, &[9; 4]).unwrap();
        assert!(control.tripped().is_none());
        assert!(d.write(4, &[9; 4]).is_err());
        assert_eq!(control.tripped().map(|t| t.torn_bytes), Some(0));
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), [9, 9, 9, 9, 0, 0, 0, 0]);
        control.reset();
        assert!(control.tripped().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
