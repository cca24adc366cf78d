//! The simulated network: keys, genesis, and four validators, each a real [`Executor`] over its
//! own redb directory running the real consensus engine, behind a [`FaultyLedger`] that skews
//! its clock and, when told to, corrupts its proposals.

use crate::VALIDATORS;
use crate::disk::{DiskControl, DiskTrip, FaultyDisk};
use chipledger_node::consensus::sim::{SimNetwork, SimValidator, ValidatorFaults};
use chipledger_node::consensus::{BlockInfo, Ledger};
use chipledger_node::executor::{Executor, Identity};
use chipledger_types::block::Block;
use chipledger_types::cbor::{Decode, Encode, Limits};
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{OrgSpec, Payload, Role, SignedTx, TxBody};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Genesis organisations, one validator each (`v-<org>`), in validator-index order.
pub const ORGS: [(&str, Role); VALIDATORS] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("vendor", Role::Publisher),
    ("audit", Role::Auditor),
];
/// The organisation the governance proposal adds.
pub const NEW_ORG: &str = "buyer";
pub const CHAIN_ID: &str = "chipledger-sim";
const GOVERNANCE_THRESHOLD: u32 = 3;
/// Far enough that nothing expires during a run, within `MAX_EXPIRY_AHEAD_BLOCKS`.
const EXPIRY_HEIGHT: u64 = 100_000;

pub fn org_key(org: &str) -> SigningKey {
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
pub fn genesis(consensus_keys: &[[u8; 32]]) -> Genesis {
    let orgs = ORGS
        .iter()
        .map(|(name, role)| OrgSpec {
            name: (*name).into(),
            roles: vec![*role],
            keys: vec![org_key(name).public_key()],
        })
        .chain([OrgSpec {
            name: crate::data::GATEWAY_ORG.into(),
            roles: vec![Role::Operator],
            keys: vec![org_key(crate::data::GATEWAY_ORG).public_key()],
        }])
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

/// `org`'s transaction number `seq` carrying `payload`, signed and encoded.
pub fn sign(org: &str, seq: u64, payload: Payload) -> Vec<u8> {
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

/// The identity (index, name, note key) of validator `index`.
pub fn identity(index: usize) -> Identity {
    Identity {
        index: index as u32,
        name: validator_name(index),
        note_seeds: vec![note_seed(index)],
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger as the engine sees it, with the validator's faults.
// ---------------------------------------------------------------------------------------------

/// The engine's view of a validator's [`Executor`]: its clock is offset by `skew_ms`, and while
/// `corrupt` is set its proposals carry a wrong state root (a byzantine proposer). A finalized
/// block it cannot store is not the end of the process (as in production, exit code 70): after
/// an injected disk fault the simulation crashes the validator; any other failure is kept in
/// `apply_error` and reported as a violation of the seed.
#[derive(Clone)]
pub struct FaultyLedger {
    inner: Executor,
    skew_ms: i64,
    corrupt: Arc<AtomicBool>,
    corrupted: Arc<AtomicU64>,
    disk: DiskControl,
    apply_error: Arc<Mutex<Option<String>>>,
}

impl FaultyLedger {
    fn clock(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.skew_ms)
    }
}

/// `block` with one bit of its state root flipped: well formed, correctly linked, invalid.
fn corrupt_state_root(block: &[u8]) -> Option<Vec<u8>> {
    let mut block = Block::from_cbor(block, Limits::BLOCK).ok()?;
    block.header.state_root[0] ^= 1;
    Some(block.to_cbor())
}

impl Ledger for FaultyLedger {
    fn genesis(&self) -> Vec<u8> {
        self.inner.genesis()
    }

    fn describe(&self, block: &[u8]) -> Option<BlockInfo> {
        self.inner.describe(block)
    }

    fn propose(&self, parent: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        let block = self.inner.propose(parent, self.clock(now_ms))?;
        if self.corrupt.load(Ordering::Relaxed) {
            self.corrupted.fetch_add(1, Ordering::Relaxed);
            return corrupt_state_root(&block);
        }
        Some(block)
    }

    fn has_pending_txs(&self) -> bool {
        self.inner.has_pending_txs()
    }

    fn verify(&self, parent: &[u8], block: &[u8], now_ms: u64) -> bool {
        self.inner.verify(parent, block, self.clock(now_ms))
    }

    fn finalized(&self, block: &[u8], _certificate: &[u8]) {
        if let Err(e) = self.inner.try_finalized(block)
            && self.disk.tripped().is_none()
        {
            let mut slot = self.apply_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(format!("{e:#}"));
        }
    }

    fn last_finalized_height(&self) -> u64 {
        self.inner.last_finalized_height()
    }

    fn on_gossip(&self, from: [u8; 32], message: &[u8]) {
        self.inner.on_gossip(from, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Validators.
// ---------------------------------------------------------------------------------------------

pub struct Node {
    pub dir: PathBuf,
    pub exec: Option<Executor>,
    engine: Option<SimValidator>,
    pub skew_ms: i64,
    /// Network faults of this validator's p2p senders (duplication, equivocation).
    pub faults: ValidatorFaults,
    /// Byzantine proposals switch, and how many proposals were corrupted.
    pub corrupt: Arc<AtomicBool>,
    pub corrupted: Arc<AtomicU64>,
    /// The disk under the running executor (a fresh, healthy one at every start: a database
    /// left over from before a crash can never write again).
    pub disk: DiskControl,
    /// What the last disk fault did, recorded when the validator crashed.
    pub disk_trip: Option<DiskTrip>,
    /// A finalized block the executor could not apply, other than through an injected fault.
    pub apply_error: Arc<Mutex<Option<String>>>,
}

impl Node {
    pub fn new(dir: PathBuf, skew_ms: i64, faults: ValidatorFaults) -> Self {
        Self {
            dir,
            exec: None,
            engine: None,
            skew_ms,
            faults,
            corrupt: Arc::default(),
            corrupted: Arc::default(),
            disk: DiskControl::default(),
            disk_trip: None,
            apply_error: Arc::default(),
        }
    }
}

pub struct World {
    pub net: SimNetwork,
    pub genesis: Genesis,
    pub nodes: Vec<Node>,
}

impl World {
    /// Opens validator `index`'s executor from its directory and starts its engine.
    pub async fn start(&mut self, index: usize) -> Result<(), String> {
        let node = &mut self.nodes[index];
        assert!(
            node.exec.is_none() && node.engine.is_none(),
            "validator {index} is running"
        );
        node.disk = DiskControl::default();
        std::fs::create_dir_all(&node.dir).map_err(|e| format!("creating {}: {e}", node.dir.display()))?;
        let file = node.dir.join("ledger.redb");
        let backend =
            FaultyDisk::open(&file, node.disk.clone()).map_err(|e| format!("opening {}: {e}", file.display()))?;
        let exec = Executor::open_with_backend(&node.dir, backend, self.genesis.clone(), identity(index))
            .map_err(|e| format!("validator {index} does not reopen from disk: {e:#}"))?;
        let ledger = FaultyLedger {
            inner: exec.clone(),
            skew_ms: node.skew_ms,
            corrupt: node.corrupt.clone(),
            corrupted: node.corrupted.clone(),
            disk: node.disk.clone(),
            apply_error: node.apply_error.clone(),
        };
        let engine = self.net.start_validator_with(index, ledger, node.faults.clone()).await;
        exec.attach_engine(engine.handle().clone());
        node.exec = Some(exec);
        node.engine = Some(engine);
        Ok(())
    }

    /// Aborts the engine and drops the executor (mempool, pending blocks, votes): only what
    /// redb and the engine's journals hold survives, as after a process crash.
    pub async fn crash(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if let Some(engine) = node.engine.take() {
            engine.crash().await;
        }
        node.exec = None;
        if let Some(trip) = node.disk.tripped() {
            node.disk_trip = Some(trip);
        }
    }

    /// The first finalized block a validator could not apply (other than by an injected disk
    /// fault), if any.
    pub fn apply_errors(&self) -> Option<String> {
        self.nodes.iter().enumerate().find_map(|(i, n)| {
            let slot = n.apply_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.as_ref()
                .map(|e| format!("validator {i} cannot apply a finalized block: {e}"))
        })
    }

    pub fn exec(&self, index: usize) -> &Executor {
        self.nodes[index].exec.as_ref().expect("validator is running")
    }

    pub fn running(&self) -> Vec<usize> {
        (0..VALIDATORS).filter(|&i| self.nodes[i].exec.is_some()).collect()
    }

    pub fn height(&self, index: usize) -> u64 {
        self.exec(index).last_finalized_height()
    }

    pub fn heights(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .map(|n| n.exec.as_ref().map(Ledger::last_finalized_height))
            .collect()
    }

    pub fn max_height(&self) -> u64 {
        self.heights().into_iter().flatten().max().unwrap_or(0)
    }
}
