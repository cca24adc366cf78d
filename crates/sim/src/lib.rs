//! Deterministic simulation of a whole chipledger network in one process.
//!
//! Four validators — each a real [`Executor`](chipledger_node::executor::Executor) over its own
//! redb directory, running the real consensus engine — on commonware's deterministic runtime
//! (virtual clock, seeded scheduler) and simulated p2p network. Everything a run does is a
//! function of its seed: the [`FaultMix`] (loss, latency, jitter, duplication, partition, crash,
//! clock skew, byzantine validator, flood), the workload (statements, governance, a firmware
//! and data-access story) and the byzantine clients. A failing seed replays exactly with
//! `chipledger sim --seed <S>`.
//!
//! ```no_run
//! let report = chipledger_sim::run_seed(7, &chipledger_sim::SimOptions::default()).unwrap();
//! println!("{}", report.mix);
//! ```
//!
//! See README.md for the fault classes, the invariants, and what is not simulated.

#![forbid(unsafe_code)]

mod data;
pub mod disk;
mod faults;
mod invariants;
mod provenance;
mod scenario;
mod story;
mod sweep;
mod workload;
mod world;

pub use data::{DataFaults, DataStats};
pub use faults::{
    Byzantine, CLOCK_SKEW_MS_MAX, Crash, DISK_FAULT_WRITES_MAX, DUPLICATE_PCT_MAX, FaultMix, LOSS_PCT_MAX, Partition,
};
pub use invariants::Invariant;
pub use sweep::{Progress, Summary, run_seeds};
pub use workload::ClientStats;

use chipledger_node::consensus::sim::{Clock, Runner, SimConfig, SimNetwork, ValidatorFaults, deterministic};
use data::DataPath;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workload::Workload;
use world::{Node, World};

/// Validators in the simulated network (tolerates one faulty validator).
pub const VALIDATORS: usize = 4;
/// The deterministic runtime's own limit on a seed's virtual time.
const VIRTUAL_TIME_MAX: Duration = Duration::from_secs(1_800);

/// How seeds are run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Where the validators' redb directories go (one sub-directory per seed, removed after).
    pub scratch: PathBuf,
}

impl Default for SimOptions {
    /// Scratch space in RAM-backed `/dev/shm` when present (redb's fsync per block on a real
    /// disk would dominate the run; a crash here aborts tasks, it does not lose the page
    /// cache), else the temporary directory.
    fn default() -> Self {
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Self {
            scratch: root.join(format!("chipledger-sim-{}", std::process::id())),
        }
    }
}

/// What one passing seed did.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub mix: FaultMix,
    /// Final height, transactions in the log and final checkpoints (validator 0's chain).
    pub height: u64,
    pub txs: u64,
    pub checkpoints: u64,
    /// Firmware installs and key releases final (validator 0's chain), each checked against
    /// the log records that must precede it.
    pub installs: u64,
    pub key_releases: u64,
    /// Byzantine validator: proposals it corrupted, conflicting votes it signed.
    pub corrupted_proposals: u64,
    pub equivocations: u64,
    /// p2p messages sent twice, over all validators.
    pub duplicated: u64,
    /// What the crashed validator's disk fault did (none for a plain kill, or if the disk saw
    /// fewer writes than the fault waited for).
    pub disk: Option<disk::DiskTrip>,
    pub clients: ClientStats,
    /// The data path: records acknowledged and refused, batches, the gateway's crash.
    pub data: DataStats,
    pub virtual_ms: u64,
    pub wall: Duration,
}

/// A seed that violated an invariant.
#[derive(Debug, thiserror::Error)]
#[error("seed {seed}: {invariant} violated in phase {phase}: {detail} [{mix}]")]
pub struct SimFailure {
    pub seed: u64,
    pub phase: &'static str,
    pub invariant: Invariant,
    pub detail: String,
    /// The seed's fault mix (boxed: it is large next to the rest).
    pub mix: Box<FaultMix>,
}

impl SimFailure {
    /// The one line that replays this seed.
    pub fn replay_command(&self) -> String {
        format!("replay: cargo run --release -p chipledger -- sim --seed {}", self.seed)
    }
}

/// A seed's directory, removed when the seed ends (also on panic).
struct SeedDir(PathBuf);

impl Drop for SeedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one seed: its whole scenario, every invariant after every phase, and the end-of-run
/// checks on every validator's database.
pub fn run_seed(seed: u64, options: &SimOptions) -> Result<SeedReport, SimFailure> {
    let mix = FaultMix::from_seed(seed);
    let dir = SeedDir(options.scratch.join(format!("seed-{seed}")));
    let started = Instant::now();
    let runner = deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(VIRTUAL_TIME_MAX)),
    );
    let fail = |phase, (invariant, detail)| SimFailure {
        seed,
        phase,
        invariant,
        detail,
        mix: Box::new(mix.clone()),
    };
    let outcome = runner.start(|context| simulate(context, seed, mix.clone(), dir.0.clone()));
    let mut report = outcome.map_err(|(phase, v)| fail(phase, v))?;
    let dirs: Vec<PathBuf> = (0..VALIDATORS).map(|i| dir.0.join(format!("v{i}"))).collect();
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let genesis = world::genesis(&validator_keys());
    let chain = invariants::final_chains(&genesis, &dir_refs, &dir.0.join("replay")).map_err(|v| fail("end", v))?;
    report.height = chain.height;
    report.txs = chain.txs;
    report.checkpoints = chain.checkpoints;
    report.installs = chain.installs;
    report.key_releases = chain.key_releases;
    invariants::story_final(&chain).map_err(|v| fail("end", v))?;
    report.wall = started.elapsed();
    Ok(report)
}

/// The simulated validators' consensus keys (fixed: they do not depend on the seed).
fn validator_keys() -> Vec<[u8; 32]> {
    chipledger_node::consensus::sim::public_keys(VALIDATORS)
}

type Outcome = Result<SeedReport, (&'static str, invariants::Violation)>;

async fn simulate(context: deterministic::Context, seed: u64, mix: FaultMix, dir: PathBuf) -> Outcome {
    let mut config = SimConfig::new(VALIDATORS);
    config.link = mix.link;
    // As in production: the engine's block limit is the ledger's.
    config.max_block_bytes = chipledger_node::consensus::MAX_BLOCK_BYTES;
    let net = SimNetwork::new(&context, config).await;
    let genesis = world::genesis(&net.public_keys());
    let nodes = (0..VALIDATORS)
        .map(|i| {
            let faults = ValidatorFaults {
                duplicate_pct: mix.duplicate_pct,
                seed: faults::mix(seed ^ (i as u64 + 1)),
                ..ValidatorFaults::default()
            };
            Node::new(dir.join(format!("v{i}")), mix.skew_ms[i], faults)
        })
        .collect();
    let mut world = World { net, genesis, nodes };
    for i in 0..VALIDATORS {
        world.start(i).await.map_err(|e| ("start", (Invariant::Restart, e)))?;
    }
    let mut load = Workload::new(seed);
    let targets: Vec<usize> = (0..VALIDATORS)
        .filter(|&i| i != mix.crashed && i != mix.byzantine.0)
        .collect();
    let gateway_to = targets[(faults::mix(seed ^ 0x6A7E) % targets.len() as u64) as usize];
    let mut data = DataPath::new(seed, mix.data.clone(), gateway_to, dir.join("gateway"));
    let result = scenario::Run {
        context: &context,
        world: &mut world,
        load: &mut load,
        data: &mut data,
        producing: true,
        mix: &mix,
        polls: 0,
    }
    .all_phases()
    .await;
    if result.is_ok() {
        load.stats.forks_dropped = invariants::forks_dropped(&world, &load);
    }
    let report = SeedReport {
        seed,
        corrupted_proposals: world.nodes.iter().map(|n| n.corrupted.load(Ordering::Relaxed)).sum(),
        equivocations: world
            .nodes
            .iter()
            .map(|n| n.faults.equivocations.load(Ordering::Relaxed))
            .sum(),
        duplicated: world
            .nodes
            .iter()
            .map(|n| n.faults.duplicated.load(Ordering::Relaxed))
            .sum(),
        disk: world.nodes[mix.crashed].disk_trip,
        clients: load.stats,
        data: data.stats,
        virtual_ms: context
            .current()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        mix,
        height: 0,
        txs: 0,
        checkpoints: 0,
        installs: 0,
        key_releases: 0,
        wall: Duration::ZERO,
    };
    for i in 0..VALIDATORS {
        world.crash(i).await;
    }
    result.map(|()| report)
}
