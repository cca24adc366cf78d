//! The CI sweep: [`DEFAULT_SEEDS`] seeds of the whole-network simulation, every fault class and
//! every invariant (see the crate README), on two threads.
//!
//! Replay one seed: `SIM_SEED=123 cargo test -p chipledger-sim`; `SIM_SEEDS=5000` runs more,
//! `SIM_THREADS=4` on more threads.

use chipledger_sim::{SimOptions, run_seeds};

/// Seeds the sweep runs unless `SIM_SEEDS` says otherwise (issue 8: at least 1,000 in CI).
const DEFAULT_SEEDS: u64 = 1_000;
/// Threads unless `SIM_THREADS` says otherwise (CI machines have 2 cores).
const DEFAULT_THREADS: usize = 2;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED must be a u64")];
    }
    (0..env_or("SIM_SEEDS", DEFAULT_SEEDS)).collect()
}

#[test]
fn whole_network_survives_every_fault_class_on_every_seed() {
    let seeds = seeds();
    let options = SimOptions::default();
    let verbose = seeds.len() == 1;
    let summary = run_seeds(
        &seeds,
        env_or("SIM_THREADS", DEFAULT_THREADS),
        &options,
        &|result| match result {
            Ok(report) if verbose => eprintln!("seed {} passed: {} [{:?}]", report.seed, report.mix, report),
            Ok(_) => {}
            Err(failure) => eprintln!("{failure}\nSIM_SEED={} cargo test -p chipledger-sim", failure.seed),
        },
    );
    let _ = std::fs::remove_dir_all(&options.scratch);
    eprintln!("{summary}");
    let failed: Vec<u64> = summary.failures.iter().map(|f| f.seed).collect();
    assert!(failed.is_empty(), "failing seeds {failed:?}");
    assert_eq!(summary.seeds, seeds.len() as u64);
}
