//! `chipledger sim`: the deterministic whole-network simulation (crate `chipledger-sim`) over
//! many seeds, or one seed replayed.

use anyhow::{Result, bail};
use chipledger_sim::{SimOptions, run_seeds};
use clap::Args;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seeds between two progress lines.
const PROGRESS_EVERY: u64 = 50;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many seeds to run, starting at `--from`.
    #[arg(long, default_value_t = 1_000)]
    pub seeds: u64,
    /// First seed of the sweep.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Run only this seed (replay), printing its fault mix and report.
    #[arg(long, conflicts_with_all = ["seeds", "from"])]
    pub seed: Option<u64>,
    /// Threads running seeds in parallel (each seed is single-threaded and deterministic).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub fn run(args: SimArgs) -> Result<()> {
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.from..args.from.saturating_add(args.seeds)).collect(),
    };
    let options = SimOptions::default();
    let replay = args.seed.is_some();
    let done = AtomicU64::new(0);
    let total = seeds.len();
    let summary = run_seeds(&seeds, args.threads, &options, &|result| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        match result {
            Ok(report) if replay => println!("seed {} passed: {}\n{report:#?}", report.seed, report.mix),
            Ok(_) => {}
            Err(failure) => println!("FAILED {failure}\n{}", failure.replay_command()),
        }
        if n.is_multiple_of(PROGRESS_EVERY) {
            eprintln!("sim: {n}/{total} seeds done");
        }
    });
    let _ = std::fs::remove_dir_all(&options.scratch);
    println!("{summary}");
    if !summary.failures.is_empty() {
        let seeds: Vec<u64> = summary.failures.iter().map(|f| f.seed).collect();
        bail!("{} seeds failed: {seeds:?}", seeds.len());
    }
    Ok(())
}
