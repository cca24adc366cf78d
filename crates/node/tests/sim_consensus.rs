//! Deterministic simulation of the consensus adapter: 4 validators on commonware's deterministic
//! runtime and simulated network, with message loss, latency, jitter and a partition that heals.
//!
//! Every seed is replayable: `SIM_SEED=123 cargo test -p chipledger-node --test sim_consensus`
//! runs only seed 123 (`SIM_SEEDS=500` changes how many seeds the sweep runs).

mod common;

use chipledger_node::consensus::sim::{Clock, Runner, SimConfig, SimLink, SimNetwork, deterministic};
use common::TestLedger;
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

const VALIDATORS: usize = 4;
/// Seeds run by the sweep unless `SIM_SEEDS` says otherwise.
const DEFAULT_SEEDS: u64 = 100;
/// Finalized heights every validator must gain after the partition heals.
const HEIGHTS_AFTER_HEAL: u64 = 5;
/// Virtual-time budgets.
const WARMUP_DEADLINE: Duration = Duration::from_secs(60);
const HEAL_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// Scenario helpers.
// ---------------------------------------------------------------------------------------------

/// splitmix64: derives a seed's scenario parameters without pulling in an RNG crate.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Network and partition parameters of one seed.
#[derive(Debug)]
struct Scenario {
    link: SimLink,
    /// Validators on the minority side of the partition (the rest stay connected).
    minority: Vec<usize>,
    partition: Duration,
}

impl Scenario {
    fn from_seed(seed: u64) -> Self {
        let r = |i: u64| mix(seed ^ i.wrapping_mul(0xA076_1D64_78BD_642F));
        let link = SimLink {
            latency_ms: 10 + r(1) % 90,
            jitter_ms: r(2) % 40,
            success_rate: 1.0 - (r(3) % 11) as f64 / 100.0, // 0–10 % loss
        };
        // Either isolate one validator (3 of 4 keep a quorum) or split 2/2 (no quorum at all).
        let minority = if r(4) % 2 == 0 {
            vec![(r(5) % VALIDATORS as u64) as usize]
        } else {
            vec![0, 1 + (r(6) % 3) as usize]
        };
        let partition = Duration::from_millis(2_000 + r(7) % 8_000);
        Self {
            link,
            minority,
            partition,
        }
    }
}

fn heights(ledgers: &[TestLedger]) -> Vec<u64> {
    ledgers.iter().map(TestLedger::height).collect()
}

/// Waits (virtual time) until every ledger in `which` reaches `height`; panics at `deadline`.
async fn wait_for_height(
    context: &deterministic::Context,
    ledgers: &[TestLedger],
    which: &[usize],
    height: u64,
    deadline: Duration,
) {
    let start = context.current();
    while which.iter().any(|&i| ledgers[i].height() < height) {
        let waited = context.current().duration_since(start).unwrap_or_default();
        assert!(
            waited < deadline,
            "liveness: validators {which:?} did not reach height {height} within {deadline:?} (heights {:?})",
            heights(ledgers)
        );
        context.sleep(POLL).await;
    }
}

/// Agreement: at every height, all validators that finalized it hold the same digest.
fn assert_agreement(ledgers: &[TestLedger]) {
    let chains: Vec<Vec<[u8; 32]>> = ledgers.iter().map(TestLedger::chain).collect();
    let longest = chains.iter().map(Vec::len).max().unwrap_or(0);
    for height in 0..longest {
        let mut digests = chains.iter().filter_map(|chain| chain.get(height));
        let first = digests.next().expect("someone finalized this height");
        assert!(
            digests.all(|d| d == first),
            "agreement: validators disagree at height {height}"
        );
    }
}

fn sim_config(link: SimLink) -> SimConfig {
    let mut config = SimConfig::new(VALIDATORS);
    config.link = link;
    config
}

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

/// One seed: warm up, partition, heal, check liveness after heal and agreement throughout.
fn run_partition_seed(seed: u64) {
    let scenario = Scenario::from_seed(seed);
    runner(seed).start(|context| async move {
        let net = SimNetwork::new(&context, sim_config(scenario.link)).await;
        let ledgers: Vec<TestLedger> = (0..VALIDATORS).map(|i| TestLedger::new(i as u8)).collect();
        let mut validators = Vec::new();
        for (i, ledger) in ledgers.iter().enumerate() {
            validators.push(net.start_validator(i, ledger.clone()).await);
        }
        let all: Vec<usize> = (0..VALIDATORS).collect();
        wait_for_height(&context, &ledgers, &all, 3, WARMUP_DEADLINE).await;

        let majority: Vec<usize> = all.iter().copied().filter(|i| !scenario.minority.contains(i)).collect();
        net.partition(&[&majority, &scenario.minority]).await;
        context.sleep(scenario.partition).await;
        assert_agreement(&ledgers);

        net.heal().await;
        let target = heights(&ledgers).into_iter().max().unwrap_or(0) + HEIGHTS_AFTER_HEAL;
        wait_for_height(&context, &ledgers, &all, target, HEAL_DEADLINE).await;
        assert_agreement(&ledgers);
        report(seed, &scenario, &ledgers);
        drop(validators);
    });
}

/// On a replay (`SIM_SEED` set), prints what happened so two runs can be compared.
fn report(seed: u64, scenario: &Scenario, ledgers: &[TestLedger]) {
    if std::env::var("SIM_SEED").is_ok() {
        let tip = ledgers[0].chain().last().map(hex_prefix).unwrap_or_default();
        eprintln!("seed {seed}: {scenario:?} heights {:?} tip(v0) {tip}", heights(ledgers));
    }
}

fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `f(seed)` and reports the seed (and how to replay it) if it panics.
fn run_seeds(name: &str, seeds: impl IntoIterator<Item = u64>, f: fn(u64)) {
    let mut failed = Vec::new();
    for seed in seeds {
        if catch_unwind(AssertUnwindSafe(|| f(seed))).is_err() {
            eprintln!(
                "{name}: seed {seed} FAILED ({:?}); replay with SIM_SEED={seed}",
                Scenario::from_seed(seed)
            );
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "{name}: failing seeds {failed:?}");
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED must be a u64")];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (0..count).collect()
}

#[test]
fn partition_heals_with_agreement_and_liveness() {
    run_seeds("partition", seeds(), run_partition_seed);
}

/// A validator crashes, the other three keep finalizing, the validator restarts from its
/// storage (same ledger, as a durable ledger would) and catches up via backfill.
fn run_crash_restart_seed(seed: u64) {
    let scenario = Scenario::from_seed(seed);
    runner(seed).start(|context| async move {
        let net = SimNetwork::new(&context, sim_config(scenario.link)).await;
        let ledgers: Vec<TestLedger> = (0..VALIDATORS).map(|i| TestLedger::new(i as u8)).collect();
        let mut validators = Vec::new();
        for (i, ledger) in ledgers.iter().enumerate() {
            validators.push(Some(net.start_validator(i, ledger.clone()).await));
        }
        let all: Vec<usize> = (0..VALIDATORS).collect();
        wait_for_height(&context, &ledgers, &all, 3, WARMUP_DEADLINE).await;

        let crashed = (mix(seed) % VALIDATORS as u64) as usize;
        validators[crashed].take().expect("running").crash().await;
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != crashed).collect();
        let behind = ledgers[crashed].height();
        wait_for_height(&context, &ledgers, &others, behind + 10, HEAL_DEADLINE).await;

        validators[crashed] = Some(net.start_validator(crashed, ledgers[crashed].clone()).await);
        let target = heights(&ledgers).into_iter().max().unwrap_or(0) + HEIGHTS_AFTER_HEAL;
        wait_for_height(&context, &ledgers, &all, target, HEAL_DEADLINE).await;
        assert_agreement(&ledgers);
        report(seed, &scenario, &ledgers);
    });
}

#[test]
fn crashed_validator_restarts_and_catches_up() {
    let seeds = std::env::var("SIM_SEED")
        .map(|_| seeds())
        .unwrap_or_else(|_| (0..5).collect());
    run_seeds("crash-restart", seeds, run_crash_restart_seed);
}

#[test]
fn gossip_reaches_every_other_validator() {
    runner(7).start(|context| async move {
        let link = SimLink {
            latency_ms: 20,
            jitter_ms: 5,
            success_rate: 1.0,
        };
        let net = SimNetwork::new(&context, sim_config(link)).await;
        let ledgers: Vec<TestLedger> = (0..VALIDATORS).map(|i| TestLedger::new(i as u8)).collect();
        let mut validators = Vec::new();
        for (i, ledger) in ledgers.iter().enumerate() {
            validators.push(net.start_validator(i, ledger.clone()).await);
        }
        // Let the peers connect, then gossip from validator 0.
        context.sleep(Duration::from_secs(1)).await;
        validators[0].handle().gossip(b"cosign:42".to_vec()).expect("queued");
        context.sleep(Duration::from_secs(1)).await;
        let sender = net.public_keys()[0];
        assert!(
            ledgers[0].gossip().is_empty(),
            "a validator does not receive its own gossip"
        );
        for ledger in &ledgers[1..] {
            assert_eq!(ledger.gossip(), vec![(sender, b"cosign:42".to_vec())]);
        }
    });
}
