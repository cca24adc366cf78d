//! Running many seeds on several threads, and the summary of a sweep.

use crate::faults::{Byzantine, Partition};
use crate::{SeedReport, SimFailure, SimOptions, run_seed};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Called after each seed (from the thread that ran it).
pub type Progress<'a> = &'a (dyn Fn(&Result<SeedReport, SimFailure>) + Sync);

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub failures: Vec<SimFailure>,
    /// Fault classes and how many seeds drew each.
    pub mix: BTreeMap<&'static str, u64>,
    /// Totals over the passing seeds.
    pub heights: u64,
    pub txs: u64,
    pub checkpoints: u64,
    /// Firmware installs and key releases final, and the story's forbidden transactions:
    /// refused (rollouts of unpublished releases, installs, key releases) and admitted.
    pub installs: u64,
    pub key_releases: u64,
    pub bad_rollouts: u64,
    pub bad_installs: u64,
    pub bad_key_releases: u64,
    pub bad_admitted: u64,
    pub corrupted_proposals: u64,
    pub equivocations: u64,
    pub duplicated: u64,
    pub replays: u64,
    pub forks: u64,
    pub forks_dropped: u64,
    pub flooded: u64,
    /// Disk faults that happened (the disk saw enough writes), torn writes among them, and
    /// unsynced writes lost in power cuts.
    pub disk_faults: u64,
    pub torn_writes: u64,
    pub lost_writes: u64,
    /// The data path, totals over the passing seeds.
    pub data: crate::DataStats,
    /// Gateway disk faults that happened, torn writes among them, unsynced writes lost.
    pub gateway_disk_faults: u64,
    pub gateway_torn_writes: u64,
    pub gateway_lost_writes: u64,
    pub virtual_ms: u64,
    /// Wall time of the sweep, and the slowest seed.
    pub wall: Duration,
    pub slowest: (u64, Duration),
}

impl Summary {
    fn add(&mut self, result: Result<SeedReport, SimFailure>) {
        self.seeds += 1;
        let r = match result {
            Ok(r) => r,
            Err(f) => {
                self.count_mix(&f.mix);
                self.failures.push(f);
                return;
            }
        };
        self.count_mix(&r.mix);
        self.heights += r.height;
        self.txs += r.txs;
        self.checkpoints += r.checkpoints;
        self.installs += r.installs;
        self.key_releases += r.key_releases;
        self.bad_rollouts += r.clients.bad_rollouts;
        self.bad_installs += r.clients.bad_installs;
        self.bad_key_releases += r.clients.bad_key_releases;
        self.bad_admitted += r.clients.bad_admitted;
        self.corrupted_proposals += r.corrupted_proposals;
        self.equivocations += r.equivocations;
        self.duplicated += r.duplicated;
        self.replays += r.clients.replays;
        self.forks += r.clients.forks;
        self.forks_dropped += r.clients.forks_dropped;
        self.flooded += r.clients.flooded;
        if let Some(trip) = r.disk {
            self.disk_faults += 1;
            self.torn_writes += u64::from(trip.torn_bytes > 0 && trip.torn_bytes < trip.write_len);
            self.lost_writes += trip.lost as u64;
        }
        let d = &mut self.data;
        d.acked += r.data.acked;
        d.gaps += r.data.gaps;
        d.out_of_order += r.data.out_of_order;
        d.duplicates += r.data.duplicates;
        d.forks += r.data.forks;
        d.bad_signatures += r.data.bad_signatures;
        d.malformed += r.data.malformed;
        d.unknown_device += r.data.unknown_device;
        d.flooded += r.data.flooded;
        d.lost_sends += r.data.lost_sends;
        d.lost_acks += r.data.lost_acks;
        d.late_refused += r.data.late_refused;
        d.store_errors += r.data.store_errors;
        d.batches += r.data.batches;
        d.reports += r.data.reports;
        d.restarts += r.data.restarts;
        if let Some(trip) = r.data.disk {
            self.gateway_disk_faults += 1;
            self.gateway_torn_writes += u64::from(trip.torn_bytes > 0 && trip.torn_bytes < trip.write_len);
            self.gateway_lost_writes += trip.lost as u64;
        }
        self.virtual_ms += r.virtual_ms;
        if r.wall > self.slowest.1 {
            self.slowest = (r.seed, r.wall);
        }
    }

    fn count_mix(&mut self, mix: &crate::FaultMix) {
        let loss = match mix.loss_pct() {
            0..=10 => "loss 0-10%",
            11..=20 => "loss 11-20%",
            _ => "loss 21-30%",
        };
        let partition = match mix.partition {
            Partition::IsolateOne(_) => "partition: isolate one",
            Partition::Split(_) => "partition: split 2-2",
        };
        let byzantine = match mix.byzantine.1 {
            Byzantine::Mute => "byzantine: mute",
            Byzantine::InvalidProposals => "byzantine: invalid proposals",
            Byzantine::Equivocate => "byzantine: equivocate",
        };
        let crash = match mix.crash {
            crate::Crash::Kill => "crash: kill",
            crate::Crash::Disk(crate::disk::DiskFault::WriteError, _) => "crash: disk write error",
            crate::Crash::Disk(crate::disk::DiskFault::PowerLoss, _) => "crash: power loss",
        };
        let gateway = match mix.data.crash {
            crate::Crash::Kill => "gateway: kill",
            crate::Crash::Disk(crate::disk::DiskFault::WriteError, _) => "gateway: disk write error",
            crate::Crash::Disk(crate::disk::DiskFault::PowerLoss, _) => "gateway: power loss",
        };
        let mut classes = vec![
            loss,
            partition,
            byzantine,
            crash,
            gateway,
            "clock skew",
            "flood",
            "byzantine devices",
        ];
        if mix.duplicate_pct > 0 {
            classes.push("duplication");
        }
        for class in classes {
            *self.mix.entry(class).or_default() += 1;
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let passed = self.seeds - self.failures.len() as u64;
        let per_seed = self.wall.as_secs_f64() * 1000.0 / self.seeds.max(1) as f64;
        writeln!(
            f,
            "sim: {} seeds, {passed} passed, {} failed in {:.1} s ({per_seed:.0} ms/seed wall, slowest seed {} {:.2} s)",
            self.seeds,
            self.failures.len(),
            self.wall.as_secs_f64(),
            self.slowest.0,
            self.slowest.1.as_secs_f64(),
        )?;
        let mix: Vec<String> = self.mix.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        writeln!(f, "sim: fault mix: {}", mix.join(", "))?;
        writeln!(
            f,
            "sim: story: {} firmware installs and {} key releases final, each after its logged approved release / grant; refused: {} rollouts of unpublished releases, {} installs under unknown or unapproved rollouts, {} key releases without a grant or outside it ({} admitted, none final)",
            self.installs,
            self.key_releases,
            self.bad_rollouts,
            self.bad_installs,
            self.bad_key_releases,
            self.bad_admitted,
        )?;
        let d = &self.data;
        writeln!(
            f,
            "sim: data: {} records acknowledged ({} after a gap, {} late gap-fillers), all in {} final batches; {} acknowledged again as duplicates; refused: {} forks, {} broken signatures, {} malformed, {} from unknown devices; {} flooded; transport lost {} records and {} acks; {} gateway restarts ({} disk faults: {} torn writes, {} unsynced writes lost), {} store errors retried, {} late records refused as replays (gap forgotten); {} anomaly reports sent",
            d.acked,
            d.gaps,
            d.out_of_order,
            d.batches,
            d.duplicates,
            d.forks,
            d.bad_signatures,
            d.malformed,
            d.unknown_device,
            d.flooded,
            d.lost_sends,
            d.lost_acks,
            d.restarts,
            self.gateway_disk_faults,
            self.gateway_torn_writes,
            self.gateway_lost_writes,
            d.store_errors,
            d.late_refused,
            d.reports,
        )?;
        write!(
            f,
            "sim: totals: {} heights, {} txs final, {} checkpoints checked, {} s virtual; byzantine: {} invalid proposals, {} conflicting votes; {} messages duplicated; clients: {} replays, {} forks ({} with neither side final), {} flooded; disks: {} faults happened ({} torn writes, {} unsynced writes lost)",
            self.heights,
            self.txs,
            self.checkpoints,
            self.virtual_ms / 1000,
            self.corrupted_proposals,
            self.equivocations,
            self.duplicated,
            self.replays,
            self.forks,
            self.forks_dropped,
            self.flooded,
            self.disk_faults,
            self.torn_writes,
            self.lost_writes,
        )
    }
}

/// Runs `seeds` on `threads` threads (each seed is independent and deterministic, so the order
/// they run in does not matter). `progress` sees each result as it comes.
pub fn run_seeds(seeds: &[u64], threads: usize, options: &SimOptions, progress: Progress<'_>) -> Summary {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = run_seed(seed, options);
                    progress(&result);
                    summary.lock().expect("summary lock").add(result);
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("summary lock");
    summary.failures.sort_by_key(|f| f.seed);
    summary.wall = started.elapsed();
    summary
}
