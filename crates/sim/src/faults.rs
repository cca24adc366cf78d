//! The fault mix of one seed: every fault class is drawn from the seed, so a seed names its
//! whole scenario and replays it exactly.

use crate::VALIDATORS;
use crate::data::DataFaults;
use crate::disk::DiskFault;
use chipledger_node::consensus::sim::SimLink;
use std::fmt;

/// Highest message loss drawn for a seed, in percent.
pub const LOSS_PCT_MAX: u64 = 30;
/// Largest per-validator clock offset drawn, in milliseconds (either sign). Below the
/// executor's `MAX_CLOCK_SKEW_MS` (10 s), so honest proposers stay within what verifiers accept.
pub const CLOCK_SKEW_MS_MAX: u64 = 4_000;
/// Highest probability (percent) that a validator's p2p message is delivered twice.
pub const DUPLICATE_PCT_MAX: u64 = 20;

/// Statements in the flood (one organisation, one validator, all at once).
pub const FLOOD_TXS_MIN: u64 = 20;
pub const FLOOD_TXS_MAX: u64 = 100;

/// splitmix64: a small, well-mixed step, enough to derive scenarios without an RNG crate.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How the network is partitioned (then healed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// One validator cut off; the other three keep a quorum.
    IsolateOne(usize),
    /// Two against two: no quorum anywhere until the heal.
    Split([usize; 2]),
}

impl Partition {
    /// The validators cut off from the rest.
    pub fn minority(&self) -> Vec<usize> {
        match self {
            Partition::IsolateOne(i) => vec![*i],
            Partition::Split(pair) => pair.to_vec(),
        }
    }
}

/// What the byzantine validator does during the byzantine phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends nothing (withholds votes, proposals and blocks); still receives.
    Mute,
    /// Proposes blocks with a wrong state root when it leads (honest validators must refuse).
    InvalidProposals,
    /// Signs a second, conflicting notarize/finalize vote (random digest) for every vote it casts.
    Equivocate,
}

/// Writes, counted from the start of the crash phase, within which the armed disk fails.
pub const DISK_FAULT_WRITES_MAX: u64 = 200;

/// How the crashed validator goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Its tasks are aborted at an instant (`crash_delay_ms` into the phase): a process kill.
    Kill,
    /// Its disk fails at the `n`th write of the phase (write error or power loss with torn and
    /// lost unsynced writes), then it is killed.
    Disk(DiskFault, u64),
}

/// Everything that goes wrong in one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    /// Link between every pair of validators: latency, jitter (reordering) and loss.
    pub link: SimLink,
    /// Probability (percent) that a validator's p2p message is sent twice.
    pub duplicate_pct: u64,
    pub partition: Partition,
    /// Virtual time the partition lasts.
    pub partition_ms: u64,
    /// The validator that crashes and restarts from disk (never receives client submissions).
    pub crashed: usize,
    /// How it crashes.
    pub crash: Crash,
    /// Virtual delay between the crash phase starting and the crash (lands anywhere in a block's
    /// finalize → apply → acknowledge sequence).
    pub crash_delay_ms: u64,
    /// Per-validator offset added to the clock its ledger proposes and verifies with.
    pub skew_ms: [i64; VALIDATORS],
    /// The byzantine validator and what it does.
    pub byzantine: (usize, Byzantine),
    /// Flood: this many extra statements from one organisation submitted at once.
    pub flood_txs: u64,
    /// The data path: device↔gateway transport faults, batch size, the gateway's crash, the
    /// record flood.
    pub data: DataFaults,
}

impl FaultMix {
    /// The fault mix of `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let r = |i: u64| mix(seed ^ mix(i));
        let link = SimLink {
            latency_ms: 5 + r(1) % 95,
            jitter_ms: r(2) % 60,
            success_rate: 1.0 - (r(3) % (LOSS_PCT_MAX + 1)) as f64 / 100.0,
        };
        let partition = if r(4) % 2 == 0 {
            Partition::IsolateOne((r(5) % VALIDATORS as u64) as usize)
        } else {
            Partition::Split([0, 1 + (r(6) % 3) as usize])
        };
        let skew = |i: u64| (r(20 + i) % (2 * CLOCK_SKEW_MS_MAX + 1)) as i64 - CLOCK_SKEW_MS_MAX as i64;
        let byzantine = match r(11) % 3 {
            0 => Byzantine::Mute,
            1 => Byzantine::InvalidProposals,
            _ => Byzantine::Equivocate,
        };
        Self {
            link,
            duplicate_pct: r(7) % (DUPLICATE_PCT_MAX + 1),
            partition,
            partition_ms: 1_000 + r(8) % 3_000,
            crashed: (r(9) % VALIDATORS as u64) as usize,
            crash: match r(14) % 3 {
                0 => Crash::Kill,
                1 => Crash::Disk(DiskFault::WriteError, 1 + r(15) % DISK_FAULT_WRITES_MAX),
                _ => Crash::Disk(DiskFault::PowerLoss, 1 + r(15) % DISK_FAULT_WRITES_MAX),
            },
            crash_delay_ms: r(10) % 1_000,
            skew_ms: [skew(0), skew(1), skew(2), skew(3)],
            byzantine: ((r(12) % VALIDATORS as u64) as usize, byzantine),
            flood_txs: FLOOD_TXS_MIN + r(13) % (FLOOD_TXS_MAX - FLOOD_TXS_MIN + 1),
            data: DataFaults::from_seed(&r),
        }
    }

    /// Message loss in percent.
    pub fn loss_pct(&self) -> u64 {
        ((1.0 - self.link.success_rate) * 100.0).round() as u64
    }
}

impl fmt::Display for FaultMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss {}% latency {}±{} ms dup {}% partition {:?} for {} ms, crash v{} {:?} (+{} ms), skew {:?} ms, byzantine v{} {:?}, flood {}; data: loss {}% ack loss {}% reorder {}% batch {} records, gateway crash {:?} at tick {}, flood {} records at tick {}",
            self.loss_pct(),
            self.link.latency_ms,
            self.link.jitter_ms,
            self.duplicate_pct,
            self.partition,
            self.partition_ms,
            self.crashed,
            self.crash,
            self.crash_delay_ms,
            self.skew_ms,
            self.byzantine.0,
            self.byzantine.1,
            self.flood_txs,
            self.data.loss_pct,
            self.data.ack_loss_pct,
            self.data.reorder_pct,
            self.data.batch_records,
            self.data.crash,
            self.data.crash_tick,
            self.data.flood_records,
            self.data.flood_tick,
        )
    }
}
