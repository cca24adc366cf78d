//! Deterministic simulation of the **real executor** under consensus: 4 validators, each an
//! [`Executor`] over its own redb directory, on commonware's deterministic runtime and simulated
//! network (latency, jitter, loss, a partition that heals, one crash and restart from disk).
//!
//! A seeded workload submits signed statements from the four organisations, and one governance
//! proposal (add organisation `buyer`) with the approvals that execute it, followed by statements
//! of `buyer`, through [`Executor::submit`] on various validators. Checked per seed:
//! - **agreement**: every height finalized by several validators has the same block digest,
//!   state root and log root on each of them (after the partition and at the end);
//! - **liveness after heal**: every validator gains [`HEIGHTS_AFTER_HEAL`] heights after the
//!   partition heals, and again after the crashed validator restarts;
//! - **no lost transaction**: every transaction `submit` accepted is final on every validator.
//!   The validator chosen to crash never receives client submissions (it only holds gossiped
//!   copies), so each accepted transaction always sits in the mempool of a validator that never
//!   loses it: a crash cannot legitimately lose an accepted transaction in this scenario;
//! - **checkpoints**: every validator stores a final checkpoint whose note carries a quorum of
//!   valid cosignatures over its own header's log size and root at that height.
//!
//! Replay one seed: `SIM_SEED=123 cargo test -p chipledger-node --test sim_ledger`
//! (`SIM_SEEDS=500` changes how many seeds the sweep runs). If the process dies with exit code
//! 70, the executor stopped on a finalized block it could not apply: the seed being run is in
//! the breadcrumb file named at the start of the output.

use chipledger_node::checkpoints::verifier_for;
use chipledger_node::consensus::Ledger;
use chipledger_node::consensus::sim::{Clock, Runner, SimConfig, SimLink, SimNetwork, SimValidator, deterministic};
use chipledger_node::executor::{Executor, Identity, TxStatus};
use chipledger_types::cbor::Encode;
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::SigningKey;
use chipledger_types::note::{NoteLimits, VerifierKey};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, TxBody, TxHash};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

const VALIDATORS: usize = 4;
/// Genesis organisations, one validator each (`v-<org>`), in validator-index order.
const ORGS: [(&str, Role); VALIDATORS] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("vendor", Role::Publisher),
    ("audit", Role::Auditor),
];
/// The organisation the governance proposal adds.
const NEW_ORG: &str = "buyer";
const CHAIN_ID: &str = "chipledger-sim";
const GOVERNANCE_THRESHOLD: u32 = 3;
/// Far enough that nothing expires during a run, within `MAX_EXPIRY_AHEAD_BLOCKS`.
const EXPIRY_HEIGHT: u64 = 100_000;
/// Seeds run by the sweep unless `SIM_SEEDS` says otherwise.
const DEFAULT_SEEDS: u64 = 100;
const WARMUP_HEIGHT: u64 = 3;
/// Heights every validator must gain after the partition heals (and after the restart).
const HEIGHTS_AFTER_HEAL: u64 = 5;
/// Heights the others finalize while the crashed validator is down.
const HEIGHTS_WHILE_CRASHED: u64 = 3;
/// Most statements submitted per workload tick.
const STATEMENTS_PER_TICK_MAX: u64 = 3;
/// Virtual-time budgets and steps.
const LOAD_BEFORE_PARTITION: Duration = Duration::from_secs(1);
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// Scenario parameters, derived from the seed.
// ---------------------------------------------------------------------------------------------

/// splitmix64: derives a seed's parameters and workload without pulling in an RNG crate.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug)]
struct Scenario {
    link: SimLink,
    /// Validators on the minority side of the partition (the rest stay connected).
    minority: Vec<usize>,
    partition: Duration,
    /// The validator that crashes and restarts (never receives client submissions).
    crashed: usize,
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
        Self {
            link,
            minority,
            partition: Duration::from_millis(2_000 + r(7) % 4_000),
            crashed: (r(8) % VALIDATORS as u64) as usize,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and genesis.
// ---------------------------------------------------------------------------------------------

fn org_key(org: &str) -> SigningKey {
    let mut seed = [0xA5u8; 32];
    seed[..org.len()].copy_from_slice(org.as_bytes());
    SigningKey::ed25519_from_seed(&seed)
}

fn note_seed(index: usize) -> [u8; 32] {
    let mut seed = [0x5Au8; 32];
    seed[0] = index as u8;
    seed
}

fn validator_name(index: usize) -> String {
    format!("v-{}", ORGS[index].0)
}

/// Genesis whose validators' consensus keys are the simulated network's keys.
fn genesis(consensus_keys: &[[u8; 32]]) -> Genesis {
    let orgs = ORGS
        .iter()
        .map(|(name, role)| OrgSpec {
            name: (*name).into(),
            roles: vec![*role],
            keys: vec![org_key(name).public_key()],
        })
        .collect();
    let validators = (0..VALIDATORS)
        .map(|i| ValidatorSpec {
            name: validator_name(i),
            org: ORGS[i].0.into(),
            consensus_key: consensus_keys[i],
            note_key: SigningKey::ed25519_from_seed(&note_seed(i)).public_key(),
            p2p_address: format!("sim-{i}:0"),
            api_url: format!("http://sim-{i}"),
        })
        .collect();
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        timestamp_ms: 0,
        orgs,
        validators,
        policy: Policy {
            governance_threshold: GOVERNANCE_THRESHOLD,
            proposal_ttl_blocks: 100_000,
        },
    };
    genesis.validate().expect("simulation genesis is valid");
    genesis
}

fn sign(org: &str, seq: u64, payload: Payload) -> Vec<u8> {
    let key = org_key(org);
    let body = TxBody {
        chain_id: CHAIN_ID.into(),
        org: org.into(),
        key_id: key.public_key().id(),
        seq,
        expiry_height: EXPIRY_HEIGHT,
        payload,
    };
    SignedTx::sign(body, &key).to_cbor()
}

// ---------------------------------------------------------------------------------------------
// Validators: an executor over its own redb directory, plus the running engine.
// ---------------------------------------------------------------------------------------------

struct Node {
    dir: PathBuf,
    exec: Option<Executor>,
    engine: Option<SimValidator>,
}

struct World {
    net: SimNetwork,
    genesis: Genesis,
    nodes: Vec<Node>,
}

impl World {
    async fn start(&mut self, index: usize) {
        let identity = Identity {
            index: index as u32,
            name: validator_name(index),
            note_seeds: vec![note_seed(index)],
        };
        let node = &mut self.nodes[index];
        assert!(
            node.exec.is_none() && node.engine.is_none(),
            "validator {index} is running"
        );
        let exec = Executor::open(&node.dir, self.genesis.clone(), identity).expect("opening the executor");
        let engine = self.net.start_validator(index, exec.clone()).await;
        exec.attach_engine(engine.handle().clone());
        node.exec = Some(exec);
        node.engine = Some(engine);
    }

    /// Aborts the engine and drops the executor (mempool, pending blocks, votes): only what
    /// redb and the engine's journals hold survives, as after a process crash.
    async fn crash(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.engine.take().expect("validator is running").crash().await;
        node.exec = None;
    }

    fn exec(&self, index: usize) -> &Executor {
        self.nodes[index].exec.as_ref().expect("validator is running")
    }

    fn running(&self) -> Vec<usize> {
        (0..VALIDATORS).filter(|&i| self.nodes[i].exec.is_some()).collect()
    }

    fn height(&self, index: usize) -> u64 {
        self.exec(index).last_finalized_height()
    }

    fn heights(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .map(|n| n.exec.as_ref().map(Ledger::last_finalized_height))
            .collect()
    }

    fn max_height(&self) -> u64 {
        self.heights().into_iter().flatten().max().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The workload: statements from every organisation, one governance proposal carried through.
// ---------------------------------------------------------------------------------------------

/// Where the governance proposal stands.
#[derive(Debug)]
enum Gov {
    NotStarted,
    /// Submitted; approvals wait until the proposal is final where they are submitted.
    Proposed {
        id: TxHash,
    },
    /// Both approvals submitted; whichever is applied second executes `AddOrg` (they are from
    /// different organisations, so either order is possible).
    Approved {
        approvals: [TxHash; 2],
    },
    /// `buyer` exists and submits statements too.
    Executed {
        approvals: [TxHash; 2],
    },
}

struct Workload {
    rng: u64,
    next_seq: BTreeMap<String, u64>,
    /// Every transaction `submit` accepted: hash → (what, validator).
    accepted: BTreeMap<TxHash, (String, usize)>,
    gov: Gov,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self {
            rng: mix(seed ^ 0x5EED_10AD),
            next_seq: BTreeMap::new(),
            accepted: BTreeMap::new(),
            gov: Gov::NotStarted,
        }
    }

    fn next(&mut self, bound: u64) -> u64 {
        self.rng = mix(self.rng);
        self.rng % bound
    }

    /// Signs `payload` as `org`'s next transaction and submits it to validator `to`; every
    /// transaction of this workload must be accepted (the test never sends an invalid one).
    fn submit(&mut self, world: &World, to: usize, org: &str, payload: Payload) -> TxHash {
        let seq = self.next_seq.get(org).copied().unwrap_or(0) + 1;
        let what = format!("{org}#{seq} {}", payload.kind());
        let bytes = sign(org, seq, payload);
        let hash = world
            .exec(to)
            .submit(bytes, true)
            .unwrap_or_else(|e| panic!("validator {to} refused {what}: {e}"));
        self.next_seq.insert(org.into(), seq);
        self.accepted.insert(hash, (what, to));
        hash
    }

    /// One step: a few statements to random validators among `targets`, and the governance
    /// proposal advanced by one stage when its precondition holds on some target.
    fn tick(&mut self, world: &World, targets: &[usize]) {
        if targets.is_empty() {
            return;
        }
        let mut orgs: Vec<&str> = ORGS.iter().map(|(o, _)| *o).collect();
        if let Gov::Executed { approvals } = &self.gov {
            // `buyer` only exists where both approvals are final.
            if targets.iter().any(|&t| all_final(world, t, approvals)) {
                orgs.push(NEW_ORG);
            }
        }
        for _ in 0..self.next(STATEMENTS_PER_TICK_MAX + 1) {
            let org = orgs[self.next(orgs.len() as u64) as usize];
            let eligible: Vec<usize> = match (&self.gov, org) {
                (Gov::Executed { approvals }, NEW_ORG) => targets
                    .iter()
                    .copied()
                    .filter(|&t| all_final(world, t, approvals))
                    .collect(),
                _ => targets.to_vec(),
            };
            let to = eligible[self.next(eligible.len() as u64) as usize];
            let body = self.next(u64::MAX).to_be_bytes().to_vec();
            let topic = "sim".to_string();
            self.submit(world, to, org, Payload::Statement { topic, body });
        }
        self.advance_governance(world, targets);
    }

    fn advance_governance(&mut self, world: &World, targets: &[usize]) {
        let to = targets[self.next(targets.len() as u64) as usize];
        match self.gov {
            Gov::NotStarted => {
                let spec = OrgSpec {
                    name: NEW_ORG.into(),
                    roles: vec![Role::Consumer],
                    keys: vec![org_key(NEW_ORG).public_key()],
                };
                let id = self.submit(world, to, "city", Payload::Propose(GovAction::AddOrg(spec)));
                self.gov = Gov::Proposed { id };
            }
            Gov::Proposed { id } if is_final(world, to, &id) => {
                let first = self.submit(world, to, "maker", Payload::Approve { proposal: id });
                let last = self.submit(world, to, "vendor", Payload::Approve { proposal: id });
                self.gov = Gov::Approved {
                    approvals: [first, last],
                };
            }
            Gov::Approved { approvals } if all_final(world, to, &approvals) => {
                self.gov = Gov::Executed { approvals };
            }
            _ => {}
        }
    }
}

fn is_final(world: &World, index: usize, hash: &TxHash) -> bool {
    matches!(world.exec(index).tx_status(hash), TxStatus::Final { .. })
}

fn all_final(world: &World, index: usize, hashes: &[TxHash]) -> bool {
    hashes.iter().all(|h| is_final(world, index, h))
}

// ---------------------------------------------------------------------------------------------
// Driving virtual time, and the checks.
// ---------------------------------------------------------------------------------------------

/// Advances virtual time in [`POLL`] steps, ticking the workload on `targets` (none: quiet),
/// until `done` holds (returns true) or `deadline` passes (returns false).
async fn drive(
    context: &deterministic::Context,
    world: &World,
    load: &mut Workload,
    targets: &[usize],
    deadline: Duration,
    done: impl Fn(&World, &Workload) -> bool,
) -> bool {
    let start = context.current();
    while !done(world, load) {
        if context.current().duration_since(start).unwrap_or_default() >= deadline {
            return false;
        }
        load.tick(world, targets);
        context.sleep(POLL).await;
    }
    true
}

/// Keeps the workload running on `targets` for `duration` of virtual time.
async fn load_for(
    context: &deterministic::Context,
    world: &World,
    load: &mut Workload,
    targets: &[usize],
    duration: Duration,
) {
    let start = context.current();
    let elapsed = |_: &World, _: &Workload| context.current().duration_since(start).unwrap_or_default() >= duration;
    drive(context, world, load, targets, duration + POLL, elapsed).await;
}

/// Waits until every running validator in `which` reaches `height`.
async fn reach_height(
    context: &deterministic::Context,
    world: &World,
    load: &mut Workload,
    targets: &[usize],
    which: &[usize],
    height: u64,
) {
    let reached = drive(context, world, load, targets, PHASE_DEADLINE, |w, _| {
        which.iter().all(|&i| w.height(i) >= height)
    })
    .await;
    assert!(
        reached,
        "liveness: validators {which:?} did not reach height {height} within {PHASE_DEADLINE:?} (heights {:?})",
        world.heights()
    );
}

/// Agreement: at every height finalized by two or more running validators, the headers'
/// digest, state root and log root are identical.
fn assert_agreement(world: &World) {
    let running = world.running();
    for height in 0..=world.max_height() {
        let headers: Vec<_> = running
            .iter()
            .filter_map(|&i| world.exec(i).header_at(height).map(|h| (i, h)))
            .collect();
        let Some((first, reference)) = headers.first() else {
            continue;
        };
        for (i, h) in &headers[1..] {
            assert!(
                h.digest() == reference.digest()
                    && h.state_root == reference.state_root
                    && h.log_root == reference.log_root,
                "agreement: validators {first} and {i} disagree at height {height}"
            );
        }
    }
}

/// No lost transaction: every accepted transaction is final on every validator.
fn all_accepted_final(world: &World, load: &Workload) -> bool {
    (0..VALIDATORS).all(|i| load.accepted.keys().all(|h| is_final(world, i, h)))
}

fn lost_transactions(world: &World, load: &Workload) -> Vec<String> {
    let mut lost = Vec::new();
    for (hash, (what, to)) in &load.accepted {
        for i in 0..VALIDATORS {
            let status = world.exec(i).tx_status(hash);
            if !matches!(status, TxStatus::Final { .. }) {
                lost.push(format!("{what} (submitted to {to}) is {status:?} on validator {i}"));
            }
        }
    }
    lost
}

fn verifiers(genesis: &Genesis) -> Vec<VerifierKey> {
    genesis
        .validators
        .iter()
        .map(|v| verifier_for(&v.name, &v.note_key).expect("ed25519 note key"))
        .collect()
}

/// Every validator's newest final checkpoint carries a quorum of valid cosignatures over its
/// own header's log at that height.
fn assert_final_checkpoints(world: &World) {
    let known = verifiers(&world.genesis);
    for i in 0..VALIDATORS {
        let exec = world.exec(i);
        let (height, note) = exec
            .latest_final_checkpoint()
            .unwrap_or_else(|| panic!("checkpoints: validator {i} has no final checkpoint"));
        let opened = open_checkpoint(
            note.as_bytes(),
            &world.genesis.log_origin(),
            &known,
            &NoteLimits::default(),
        )
        .unwrap_or_else(|e| panic!("checkpoints: validator {i}'s final checkpoint does not open: {e}"));
        assert!(
            opened.note.verified.len() >= world.genesis.quorum(),
            "checkpoints: validator {i}'s checkpoint at {height} has {} of {} cosignatures",
            opened.note.verified.len(),
            world.genesis.quorum()
        );
        let header = exec.header_at(height).expect("checkpoint height is finalized");
        assert_eq!(
            (opened.checkpoint.size, opened.checkpoint.root),
            (header.log_size, header.log_root),
            "checkpoints: validator {i}'s checkpoint does not match its block {height}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// One seed.
// ---------------------------------------------------------------------------------------------

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(900))),
    )
}

fn run_seed(seed: u64, dir: &Path) {
    let scenario = Scenario::from_seed(seed);
    let dir = dir.to_path_buf();
    runner(seed).start(|context| async move {
        let mut config = SimConfig::new(VALIDATORS);
        config.link = scenario.link;
        // As in production: the engine's block limit is the ledger's (the executor fills
        // blocks up to `chipledger_types::limits::MAX_BLOCK_BYTES`).
        config.max_block_bytes = chipledger_node::consensus::MAX_BLOCK_BYTES;
        let net = SimNetwork::new(&context, config).await;
        let genesis = genesis(&net.public_keys());
        let nodes = (0..VALIDATORS)
            .map(|i| Node {
                dir: dir.join(format!("v{i}")),
                exec: None,
                engine: None,
            })
            .collect();
        let mut world = World { net, genesis, nodes };
        for i in 0..VALIDATORS {
            world.start(i).await;
        }
        let mut load = Workload::new(seed);
        run_phases(&context, &mut world, &mut load, &scenario).await;
        report(seed, &scenario, &world, &load);
        for i in 0..VALIDATORS {
            world.crash(i).await;
        }
    });
}

async fn run_phases(context: &deterministic::Context, world: &mut World, load: &mut Workload, s: &Scenario) {
    let all: Vec<usize> = (0..VALIDATORS).collect();
    // Clients never talk to the validator that will crash (see the module documentation).
    let targets: Vec<usize> = all.iter().copied().filter(|&i| i != s.crashed).collect();
    reach_height(context, world, load, &[], &all, WARMUP_HEIGHT).await;
    load_for(context, world, load, &targets, LOAD_BEFORE_PARTITION).await;

    let majority: Vec<usize> = all.iter().copied().filter(|i| !s.minority.contains(i)).collect();
    world.net.partition(&[&majority, &s.minority]).await;
    load_for(context, world, load, &targets, s.partition).await;
    assert_agreement(world);

    world.net.heal().await;
    let target = world.max_height() + HEIGHTS_AFTER_HEAL;
    reach_height(context, world, load, &targets, &all, target).await;

    world.crash(s.crashed).await;
    let target = world.max_height() + HEIGHTS_WHILE_CRASHED;
    reach_height(context, world, load, &targets, &targets, target).await;
    world.start(s.crashed).await;
    let target = world.max_height() + HEIGHTS_AFTER_HEAL;
    reach_height(context, world, load, &targets, &all, target).await;
    settle(context, world, load, &targets).await;
}

/// Lets governance finish (with load), then stops submitting and checks the end state.
async fn settle(context: &deterministic::Context, world: &World, load: &mut Workload, targets: &[usize]) {
    let executed = |_: &World, l: &Workload| matches!(l.gov, Gov::Executed { .. }) && l.next_seq.contains_key(NEW_ORG);
    let done = drive(context, world, load, targets, PHASE_DEADLINE, executed).await;
    assert!(done, "governance: proposal not executed in time ({:?})", load.gov);

    let done = drive(context, world, load, &[], PHASE_DEADLINE, all_accepted_final).await;
    let lost = lost_transactions(world, load);
    assert!(
        done && lost.is_empty(),
        "lost transactions: {} accepted, not final everywhere after {PHASE_DEADLINE:?}: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );

    let checkpointed = |w: &World, _: &Workload| (0..VALIDATORS).all(|i| w.exec(i).latest_final_checkpoint().is_some());
    drive(context, world, load, &[], PHASE_DEADLINE, checkpointed).await;
    assert_final_checkpoints(world);
    assert_agreement(world);
}

/// On a replay (`SIM_SEED` set), prints what happened so two runs can be compared.
fn report(seed: u64, scenario: &Scenario, world: &World, load: &Workload) {
    if std::env::var("SIM_SEED").is_ok() {
        let tip = world.exec(0).header_at(world.height(0)).expect("tip header");
        let checkpoints: Vec<_> = (0..VALIDATORS)
            .map(|i| world.exec(i).latest_final_checkpoint().map(|(h, _)| h))
            .collect();
        eprintln!(
            "seed {seed}: {scenario:?}\n  heights {:?}, {} transactions final, tip(v0) {}, log size {}, final checkpoints {checkpoints:?}",
            world.heights(),
            load.accepted.len(),
            hex_prefix(&tip.digest()),
            tip.log_size,
        );
    }
}

fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The sweep.
// ---------------------------------------------------------------------------------------------

/// A seed's redb directories; removed when the seed ends (also on panic). Left behind only if
/// the process dies, which then also names the seed.
struct SeedDir(PathBuf);

impl Drop for SeedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the validators' redb files go: RAM-backed `/dev/shm` when present, since redb's fsync
/// per block on a real disk would dominate the run (durability is not what this test checks:
/// a crash here aborts tasks, it does not lose the page cache); else the temporary directory.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
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
fn executors_agree_lose_nothing_and_checkpoint_under_faults() {
    let base = scratch_root().join(format!("chipledger-sim-ledger-{}", std::process::id()));
    let breadcrumb = base.join("current-seed");
    std::fs::create_dir_all(&base).expect("creating the simulation directory");
    // Not captured by the test harness, so it is visible even if the executor exits the process.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "sim_ledger: seed in progress is written to {} (read it if the process exits with code 70)",
        breadcrumb.display()
    );
    let mut failed = Vec::new();
    for seed in seeds() {
        std::fs::write(&breadcrumb, format!("SIM_SEED={seed}\n")).expect("writing the breadcrumb");
        let dir = SeedDir(base.join(format!("seed-{seed}")));
        if catch_unwind(AssertUnwindSafe(|| run_seed(seed, &dir.0))).is_err() {
            eprintln!(
                "sim_ledger: seed {seed} FAILED ({:?}); replay with SIM_SEED={seed} cargo test -p chipledger-node --test sim_ledger",
                Scenario::from_seed(seed)
            );
            failed.push(seed);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(failed.is_empty(), "sim_ledger: failing seeds {failed:?}");
}
