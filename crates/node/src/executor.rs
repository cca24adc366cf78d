//! The ledger side of a validator: executes blocks speculatively when they are proposed or
//! verified, commits them when the engine finalizes them, and collects checkpoint cosignatures.
//!
//! Each block header commits to the state and log *after* its own transactions, so a block is
//! executed before it is voted on. Unfinalized blocks keep their own write set (cumulative since
//! the last finalized block), state-map version and log frontier; finalization writes one of
//! them to redb in a single transaction and drops its competitors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};

use anyhow::{Context, Result, bail};
use chipledger_state::smt::Smt;
use chipledger_state::store::{Overlay, StateRead, WriteSet, update_smt};
use chipledger_state::{BlockContext, SignatureCheck, TxError, apply_tx, genesis_writes};
use chipledger_types::block::{BLOCK_VERSION, Block, BlockHeader};
use chipledger_types::cbor::{Decode, Decoder, Encode, Limits};
use chipledger_types::genesis::Genesis;
use chipledger_types::keys::{PublicKey, SignatureError};
use chipledger_types::limits::{MAX_BLOCK_BYTES, MAX_BLOCK_TXS};
use chipledger_types::merkle::{Frontier, hash_leaf};
use chipledger_types::tx::{Payload, SignedTx, TxHash};
use tracing::{error, info, warn};

use crate::checkpoints::Votes;
use crate::consensus::{BlockInfo, EngineHandle, Ledger};
use crate::db::{BlockCommit, Db};
use crate::fleet_index::FleetIndex;
use crate::mempool::{BlockBudget, Mempool, MempoolError};
use crate::metrics::Metrics;

/// How far a proposer's timestamp may run ahead of a verifier's clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 10_000;
/// Verified-signature cache size (transaction hashes).
const SIG_CACHE_MAX: usize = 200_000;
/// Remembered rejection reasons (for `tx status`).
const REJECTED_MAX: usize = 100_000;
/// What a proposer puts in one block, in execution-cost units ([`tx_weight`]): a block must be
/// built by its leader and executed by every verifier well within the consensus timeouts
/// (leader 1 s), or a backlog of expensive transactions stalls the chain (seen: 10,000 device
/// registrations, each verifying an X.509 chain, made every proposal miss its view). A proposer's
/// policy, not a validity rule: verifiers accept heavier blocks.
pub const MAX_BLOCK_WEIGHT: u64 = 20_000;
/// A transaction whose only public-key work is its own (cached) signature.
const WEIGHT_BASIC: u32 = 2;
/// One that also verifies certificates or signed evidence (X.509 chains, COSE, EAT, SUIT):
/// about 0.3 ms each in a release build, so at most 500 per block.
const WEIGHT_SIGNED_EVIDENCE: u32 = 40;
/// A zero-knowledge range proof: at most 20 per block.
const WEIGHT_PROOF: u32 = 1_000;

/// Execution cost of a transaction (see [`MAX_BLOCK_WEIGHT`]).
pub fn tx_weight(payload: &Payload) -> u32 {
    match payload {
        Payload::PublishRangeProof(_) => WEIGHT_PROOF,
        Payload::RegisterDevice(_)
        | Payload::Attest(_)
        | Payload::AttestInstall(_)
        | Payload::PublishRelease(_)
        | Payload::RegisterGateway(_)
        | Payload::CommitBatch(_)
        | Payload::ReportChainAnomaly(_)
        | Payload::RequestRebirth(_)
        | Payload::RecordCommand(_)
        | Payload::AccessReceipt(_)
        | Payload::KeyRelease(_) => WEIGHT_SIGNED_EVIDENCE,
        _ => WEIGHT_BASIC,
    }
}

/// The ledger database file in an executor's directory.
const LEDGER_FILE: &str = "ledger.redb";

/// This validator's identity within the genesis validator list.
#[derive(Clone)]
pub struct Identity {
    pub index: u32,
    pub name: String,
    /// Ed25519 seeds of this validator's checkpoint-cosigning keys; the one matching the key on
    /// the ledger at a height signs (several, so a rotation can be staged before it takes effect).
    pub note_seeds: Vec<[u8; 32]>,
}

/// The last finalized block and the state, map and log after it.
#[derive(Clone)]
pub(crate) struct Tip {
    pub height: u64,
    pub digest: [u8; 32],
    pub header: BlockHeader,
    pub smt: Smt,
    pub frontier: Frontier,
}

/// An executed, not yet finalized block.
struct Pending {
    header: BlockHeader,
    block: Vec<u8>,
    /// Writes since the last finalized block (ancestors' included).
    writes: WriteSet,
    smt: Smt,
    frontier: Frontier,
    /// Transactions in this block and its unfinalized ancestors.
    included: HashSet<TxHash>,
    tx_hashes: Vec<[u8; 32]>,
}

/// A parent to build on: either the tip or a pending block.
struct ParentView<'a> {
    header: &'a BlockHeader,
    digest: [u8; 32],
    writes: Option<&'a WriteSet>,
    smt: &'a Smt,
    frontier: &'a Frontier,
    included: Option<&'a HashSet<TxHash>>,
}

pub(crate) struct Inner {
    pub db: Arc<Db>,
    pub tip: Tip,
    pending: HashMap<[u8; 32], Pending>,
    pub mempool: Mempool,
    rejected: HashMap<TxHash, String>,
    rejected_order: VecDeque<TxHash>,
    pub votes: Votes,
}

pub(crate) struct Shared {
    pub genesis: Genesis,
    pub genesis_block: Vec<u8>,
    pub me: Identity,
    pub engine: OnceLock<EngineHandle>,
    pub metrics: Metrics,
    sig_cache: Mutex<SigCache>,
    /// Node-local device index, derived from finalized state only (never read by consensus);
    /// updated in `commit` while the executor lock is held.
    pub fleet: RwLock<FleetIndex>,
}

/// The node's [`Ledger`]: cheap to clone, shared by the engine and the API.
#[derive(Clone)]
pub struct Executor {
    pub(crate) inner: Arc<Mutex<Inner>>,
    pub(crate) shared: Arc<Shared>,
}

#[derive(Default)]
struct SigCache {
    set: HashSet<TxHash>,
    order: VecDeque<TxHash>,
}

struct CachedCheck<'a>(&'a Mutex<SigCache>);

impl SignatureCheck for CachedCheck<'_> {
    fn check(&self, hash: &TxHash, tx: &SignedTx, key: &PublicKey) -> Result<(), SignatureError> {
        if self.0.lock().expect("sig cache poisoned").set.contains(hash) {
            return Ok(());
        }
        tx.verify_with(key)?;
        let mut c = self.0.lock().expect("sig cache poisoned");
        if c.set.insert(*hash) {
            c.order.push_back(*hash);
            if c.order.len() > SIG_CACHE_MAX {
                let old = c.order.pop_front().expect("non-empty");
                c.set.remove(&old);
            }
        }
        Ok(())
    }
}

/// Outcome of submitting a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] TxError),
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    #[error("transaction is already final at height {0}")]
    AlreadyFinal(u64),
}

impl SubmitError {
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Rejected(e) => e.code(),
            SubmitError::Mempool(MempoolError::Duplicate) => "duplicate",
            SubmitError::Mempool(_) => "mempool_full",
            SubmitError::AlreadyFinal(_) => "already_final",
        }
    }
}

/// The genesis block: parent = SHA-256(genesis config), empty log, genesis state root.
pub fn genesis_block(genesis: &Genesis) -> (Block, WriteSet, Smt) {
    let writes = genesis_writes(genesis);
    let mut smt = Smt::default();
    update_smt(&mut smt, &writes);
    let header = BlockHeader {
        version: BLOCK_VERSION,
        height: 0,
        parent: genesis.hash(),
        timestamp_ms: genesis.timestamp_ms,
        proposer: 0,
        tx_count: 0,
        log_size: 0,
        log_root: chipledger_types::merkle::empty_root(),
        state_root: smt.root(),
    };
    (
        Block {
            header,
            txs: Vec::new(),
        },
        writes,
        smt,
    )
}

/// Decode just the header of an encoded block.
pub fn decode_header(block: &[u8]) -> Option<BlockHeader> {
    let mut d = Decoder::new(block, Limits::BLOCK).ok()?;
    d.array_of(2).ok()?;
    BlockHeader::decode(&mut d).ok()
}

impl Executor {
    /// Open (or create) the ledger database under `dir` for this genesis and identity.
    pub fn open(dir: &Path, genesis: Genesis, me: Identity) -> Result<Executor> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db = Db::open(&dir.join(LEDGER_FILE))?;
        Self::open_db(db, dir, genesis, me)
    }

    /// As [`Executor::open`], with the database file `dir/ledger.redb` reached through
    /// `backend` (built over that file by the caller): the simulation's faulty disk.
    pub fn open_with_backend(
        dir: &Path,
        backend: impl redb::StorageBackend,
        genesis: Genesis,
        me: Identity,
    ) -> Result<Executor> {
        let db = Db::open_with_backend(backend, &dir.join(LEDGER_FILE).display().to_string())?;
        Self::open_db(db, dir, genesis, me)
    }

    fn open_db(db: Db, dir: &Path, genesis: Genesis, me: Identity) -> Result<Executor> {
        let db = Arc::new(db);
        let (gblock, gwrites, _) = genesis_block(&genesis);
        let genesis_bytes = gblock.to_cbor();
        if db.height()?.is_none() {
            let frontier = Frontier::new();
            db.commit_block(&BlockCommit {
                height: 0,
                digest: gblock.digest(),
                block: &genesis_bytes,
                writes: &gwrites,
                tx_hashes: &[],
                first_leaf: 0,
                log_nodes: &[],
                frontier: &frontier,
            })?;
        }
        let tip = load_tip(&db)?;
        let fleet = build_fleet_index(&db, tip.height)?;
        let stored_genesis = db.block(0)?.context("genesis block missing")?;
        if stored_genesis != genesis_bytes {
            bail!("the database in {} belongs to a different genesis", dir.display());
        }
        info!(height = tip.height, log_size = tip.frontier.size(), "ledger opened");
        let metrics = Metrics::default();
        metrics.set_height(tip.height, tip.frontier.size());
        let votes = Votes::new(&db)?;
        let inner = Inner {
            db,
            tip,
            pending: HashMap::new(),
            mempool: Mempool::default(),
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
            votes,
        };
        let shared = Shared {
            genesis,
            genesis_block: genesis_bytes,
            me,
            engine: OnceLock::new(),
            metrics,
            sig_cache: Mutex::new(SigCache::default()),
            fleet: RwLock::new(fleet),
        };
        let exec = Executor {
            inner: Arc::new(Mutex::new(inner)),
            shared: Arc::new(shared),
        };
        exec.reload_mempool()?;
        Ok(exec)
    }

    /// Give the executor the running engine's handle (for gossip).
    pub fn attach_engine(&self, handle: EngineHandle) {
        let _ = self.shared.engine.set(handle);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("executor lock poisoned")
    }

    pub fn genesis_config(&self) -> &Genesis {
        &self.shared.genesis
    }

    pub fn identity(&self) -> &Identity {
        &self.shared.me
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Read-only: the header of the block this validator finalized at `height` (`None` above
    /// its tip or on a read error). Lets tests compare validators' chains without the API.
    pub fn header_at(&self, height: u64) -> Option<BlockHeader> {
        let block = self.lock().db.block(height).ok()??;
        decode_header(&block)
    }

    /// Read-only: the node-local device index (finalized state; each answer names its height).
    pub fn fleet(&self) -> RwLockReadGuard<'_, FleetIndex> {
        self.shared.fleet.read().expect("fleet index lock poisoned")
    }

    /// Read-only: a snapshot of the finalized state (the database's read transaction, so it
    /// stays consistent while blocks are applied). In-process readers such as the simulator's
    /// gateway use it as the API's state endpoints do.
    pub fn finalized_state(&self) -> Result<crate::db::DbState> {
        let db = self.lock().db.clone();
        db.state()
    }

    /// Read-only: the newest final checkpoint as `(height, signed note text)`, if any.
    pub fn latest_final_checkpoint(&self) -> Option<(u64, String)> {
        self.lock().votes.latest_final.clone()
    }

    fn ctx<'a>(&'a self, height: u64, timestamp_ms: u64) -> BlockContext<'a> {
        BlockContext {
            chain_id: &self.shared.genesis.chain_id,
            height,
            timestamp_ms,
        }
    }

    /// Admit a transaction to the mempool after checking it against the finalized state.
    /// `from_client`: it came from a client (persist it, then gossip it), not from a peer.
    pub fn submit(&self, bytes: Vec<u8>, from_client: bool) -> Result<TxHash, SubmitError> {
        self.submit_many(vec![bytes], from_client)
            .pop()
            .expect("one result per transaction")
    }

    /// Admit several transactions; each gets its own result. Those from a client are written
    /// to the on-disk mempool (one durable write for the batch, outside the executor lock)
    /// *before* this returns, so an accepted transaction survives a crash of this validator;
    /// then they are gossiped. Copies received from peers are only kept in memory: their
    /// origin holds the durable copy and re-gossips it.
    pub fn submit_many(&self, txs: Vec<Vec<u8>>, from_client: bool) -> Vec<Result<TxHash, SubmitError>> {
        let mut inner = self.lock();
        let mut admitted: Vec<(TxHash, Arc<Vec<u8>>)> = Vec::new();
        let results: Vec<_> = txs
            .into_iter()
            .map(|bytes| {
                let (hash, bytes) = self.admit(&mut inner, bytes)?;
                admitted.push((hash, bytes));
                Ok(hash)
            })
            .collect();
        self.shared.metrics.set_mempool(inner.mempool.len());
        let db = inner.db.clone();
        drop(inner);
        if !from_client || admitted.is_empty() {
            return results;
        }
        if let Err(e) = db.mempool_put(&admitted) {
            // Without the durable copy the promise "accepted = not lost" would not hold.
            error!(error = %e, "cannot persist the mempool");
            let mut inner = self.lock();
            for (h, _) in &admitted {
                inner.mempool.remove(h);
            }
            let why = TxError::Corrupt {
                key: "mempool".into(),
                why: e.to_string(),
            };
            return results
                .into_iter()
                .map(|r| r.and(Err(SubmitError::Rejected(why.clone()))))
                .collect();
        }
        let refs: Vec<&[u8]> = admitted.iter().map(|(_, b)| b.as_slice()).collect();
        crate::checkpoints::gossip_txs(self, &refs);
        results
    }

    /// Check one transaction against the finalized state and put it in the mempool.
    fn admit(&self, inner: &mut Inner, bytes: Vec<u8>) -> Result<(TxHash, Arc<Vec<u8>>), SubmitError> {
        let hash = TxHash::of(&bytes);
        let tx = SignedTx::from_bytes(&bytes).map_err(TxError::from)?;
        if let Some((h, _)) = inner.db.tx_location(&hash.0).ok().flatten() {
            return Err(SubmitError::AlreadyFinal(h));
        }
        if inner.mempool.contains(&hash) {
            return Err(MempoolError::Duplicate.into());
        }
        let state = inner.db.state().map_err(|e| corrupt(&e))?;
        let ctx = self.ctx(inner.tip.height + 1, inner.tip.header.timestamp_ms + 1);
        let mut scratch = WriteSet::new();
        match apply_tx(&state, &mut scratch, &ctx, &CachedCheck(&self.shared.sig_cache), &bytes) {
            // A later sequence number waits in the mempool for the ones before it.
            Ok(_) | Err(TxError::SeqGap { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let bytes = Arc::new(bytes);
        let weight = tx_weight(&tx.body.payload);
        inner
            .mempool
            .insert(hash, bytes.clone(), &tx.body.org, tx.body.seq, weight)?;
        Ok((hash, bytes))
    }

    /// Re-admit the transactions of the on-disk mempool after a restart; drops the ones that
    /// became final or invalid meanwhile.
    fn reload_mempool(&self) -> Result<()> {
        let stored = self.lock().db.mempool_all()?;
        let total = stored.len();
        let hashes: Vec<TxHash> = stored.iter().map(|b| TxHash::of(b)).collect();
        let results = self.submit_many(stored, false);
        let dropped: Vec<[u8; 32]> = hashes
            .iter()
            .zip(&results)
            .filter(|(_, r)| !matches!(r, Ok(_) | Err(SubmitError::Mempool(MempoolError::Duplicate))))
            .map(|(h, _)| h.0)
            .collect();
        self.lock().db.mempool_remove(&dropped)?;
        if total > 0 {
            info!(
                reloaded = total - dropped.len(),
                dropped = dropped.len(),
                "mempool reloaded from disk"
            );
        }
        Ok(())
    }

    /// Gossip again the transactions that have waited at least `min_age` (best-effort gossip
    /// can drop messages; this makes every pending transaction reach every validator).
    pub fn regossip_stale(&self, min_age: std::time::Duration, max_txs: usize) -> usize {
        let stale = self.lock().mempool.older_than(min_age, max_txs);
        let refs: Vec<&[u8]> = stale.iter().map(|b| b.as_slice()).collect();
        crate::checkpoints::gossip_txs(self, &refs);
        stale.len()
    }

    /// Where a transaction stands: final (height, leaf index), pending, rejected or unknown.
    pub fn tx_status(&self, hash: &TxHash) -> TxStatus {
        let inner = self.lock();
        if let Ok(Some((height, index))) = inner.db.tx_location(&hash.0) {
            return TxStatus::Final { height, index };
        }
        if inner.mempool.contains(hash) || inner.pending.values().any(|p| p.included.contains(hash)) {
            return TxStatus::Pending;
        }
        match inner.rejected.get(hash) {
            Some(why) => TxStatus::Rejected(why.clone()),
            None => TxStatus::Unknown,
        }
    }

    fn remember_rejection(inner: &mut Inner, hash: TxHash, why: String) {
        if inner.rejected.insert(hash, why).is_none() {
            inner.rejected_order.push_back(hash);
            if inner.rejected_order.len() > REJECTED_MAX {
                let old = inner.rejected_order.pop_front().expect("non-empty");
                inner.rejected.remove(&old);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Final { height: u64, index: u64 },
    Pending,
    Rejected(String),
    Unknown,
}

fn corrupt(e: &anyhow::Error) -> TxError {
    TxError::Corrupt {
        key: "db".into(),
        why: e.to_string(),
    }
}

fn load_tip(db: &Db) -> Result<Tip> {
    let height = db.height()?.context("empty database")?;
    let block = db.block(height)?.context("tip block missing")?;
    let header = decode_header(&block).context("stored tip block does not decode")?;
    let frontier = db.frontier()?;
    let mut smt = Smt::default();
    let mut all = WriteSet::new();
    db.for_each_state(|k, v| {
        all.insert(k.to_vec(), Some(v.to_vec()));
    })?;
    update_smt(&mut smt, &all);
    // Pair assertions with the writer side: what was stored must reproduce the header.
    if smt.root() != header.state_root || frontier.root() != header.log_root || frontier.size() != header.log_size {
        bail!("stored state does not match the header of block {height}: the database is damaged");
    }
    Ok(Tip {
        height,
        digest: header.digest(),
        header,
        smt,
        frontier,
    })
}

/// Build the node-local device index from the finalized state (logged with its cost).
fn build_fleet_index(db: &Db, height: u64) -> Result<FleetIndex> {
    let started = std::time::Instant::now();
    let fleet = FleetIndex::load(db, height)?;
    info!(
        devices = fleet.len(),
        skipped = fleet.skipped(),
        build_ms = started.elapsed().as_millis() as u64,
        "fleet index built"
    );
    Ok(fleet)
}

/// How `execute` treats a transaction that fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Leave it out (building a block) and report it.
    Propose,
    /// Reject the whole block (verifying someone else's block).
    Verify,
}

struct Executed {
    pending: Pending,
    failed: Vec<(TxHash, TxError)>,
}

impl Executor {
    /// Execute `txs` on top of `parent`; returns the block's pending record with its header
    /// filled in (`timestamp_ms`, `proposer` as given).
    fn execute(
        &self,
        base: &dyn StateRead,
        parent: &ParentView<'_>,
        timestamp_ms: u64,
        proposer: u32,
        txs: Vec<Arc<Vec<u8>>>,
        mode: Mode,
    ) -> Result<Executed, TxError> {
        let height = parent.header.height + 1;
        let ctx = self.ctx(height, timestamp_ms);
        let empty = WriteSet::new();
        let view = Overlay {
            base,
            writes: parent.writes.unwrap_or(&empty),
        };
        let sigs = CachedCheck(&self.shared.sig_cache);
        let (mut own, mut kept, mut failed) = (WriteSet::new(), Vec::new(), Vec::new());
        let mut frontier = parent.frontier.clone();
        let mut included = parent.included.cloned().unwrap_or_default();
        for tx in txs {
            let hash = TxHash::of(&tx);
            let dup = included.contains(&hash);
            match apply_tx(&view, &mut own, &ctx, &sigs, &tx) {
                Ok(_) if !dup => {
                    frontier.append_leaf_hash(hash_leaf(&tx), |_| {});
                    included.insert(hash);
                    kept.push((hash, tx));
                }
                Ok(_) => unreachable!("a transaction already in the chain cannot apply again (replay check)"),
                Err(e) if mode == Mode::Verify => return Err(e),
                Err(e) => failed.push((hash, e)),
            }
        }
        let mut smt = parent.smt.clone();
        update_smt(&mut smt, &own);
        let mut writes = parent.writes.cloned().unwrap_or_default();
        writes.extend(own);
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height,
            parent: parent.digest,
            timestamp_ms,
            proposer,
            tx_count: kept.len() as u32,
            log_size: frontier.size(),
            log_root: frontier.root(),
            state_root: smt.root(),
        };
        let tx_hashes = kept.iter().map(|(h, _)| h.0).collect();
        let block = Block {
            header: header.clone(),
            txs: kept.into_iter().map(|(_, t)| t.to_vec()).collect(),
        };
        let pending = Pending {
            header,
            block: block.to_cbor(),
            writes,
            smt,
            frontier,
            included,
            tx_hashes,
        };
        Ok(Executed { pending, failed })
    }

    /// The tip or a pending block with this digest.
    fn parent_view<'a>(inner: &'a Inner, digest: &[u8; 32]) -> Option<ParentView<'a>> {
        if *digest == inner.tip.digest {
            let t = &inner.tip;
            return Some(ParentView {
                header: &t.header,
                digest: t.digest,
                writes: None,
                smt: &t.smt,
                frontier: &t.frontier,
                included: None,
            });
        }
        inner.pending.get(digest).map(|p| ParentView {
            header: &p.header,
            digest: *digest,
            writes: Some(&p.writes),
            smt: &p.smt,
            frontier: &p.frontier,
            included: Some(&p.included),
        })
    }

    fn build(&self, parent_digest: [u8; 32], now_ms: u64) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let state = inner.db.state().ok()?;
        let parent = Self::parent_view(&inner, &parent_digest)?;
        let timestamp_ms = now_ms.max(parent.header.timestamp_ms + 1);
        let skip = |h: &TxHash| parent.included.is_some_and(|s| s.contains(h));
        let candidates: Vec<Arc<Vec<u8>>> = inner
            .mempool
            .select(
                BlockBudget {
                    txs: MAX_BLOCK_TXS,
                    bytes: MAX_BLOCK_BYTES - 4096,
                    weight: MAX_BLOCK_WEIGHT,
                },
                skip,
            )
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let exec = self
            .execute(
                &state,
                &parent,
                timestamp_ms,
                self.shared.me.index,
                candidates,
                Mode::Propose,
            )
            .ok()?;
        let mut dropped = Vec::new();
        for (hash, err) in exec.failed {
            if matches!(err, TxError::SeqGap { .. }) {
                continue;
            }
            inner.mempool.remove(&hash);
            dropped.push(hash.0);
            Self::remember_rejection(&mut inner, hash, err.to_string());
        }
        if let Err(e) = inner.db.mempool_remove(&dropped) {
            warn!(error = %e, "cannot drop rejected transactions from the on-disk mempool");
        }
        let bytes = exec.pending.block.clone();
        let digest = exec.pending.header.digest();
        inner.pending.insert(digest, exec.pending);
        Some(bytes)
    }

    fn check(&self, parent_digest: [u8; 32], block: &[u8], now_ms: u64) -> Result<(), String> {
        let b = Block::from_bytes(block).map_err(|e| format!("undecodable block: {e}"))?;
        let digest = b.digest();
        let mut inner = self.lock();
        if inner.pending.contains_key(&digest) {
            return Ok(());
        }
        let state = inner.db.state().map_err(|e| e.to_string())?;
        let parent = Self::parent_view(&inner, &parent_digest).ok_or("unknown or stale parent")?;
        let h = &b.header;
        if h.parent != parent_digest || h.height != parent.header.height + 1 {
            return Err("parent or height mismatch".into());
        }
        if h.timestamp_ms <= parent.header.timestamp_ms || h.timestamp_ms > now_ms + MAX_CLOCK_SKEW_MS {
            return Err(format!("timestamp {} out of bounds", h.timestamp_ms));
        }
        if h.proposer as usize >= self.shared.genesis.validators.len() {
            return Err("unknown proposer".into());
        }
        let txs = b.txs.into_iter().map(Arc::new).collect();
        let exec = self
            .execute(&state, &parent, h.timestamp_ms, h.proposer, txs, Mode::Verify)
            .map_err(|e| e.to_string())?;
        if exec.pending.header != b.header {
            return Err("header does not match the executed block (state, log or count)".into());
        }
        inner.pending.insert(digest, exec.pending);
        Ok(())
    }

    /// Make sure `block` (a parent we are asked to build on or verify against) has been
    /// executed: a validator that missed its proposal executes it now, provided its own parent
    /// is known. Returns its digest.
    fn ensure_executed(&self, block: &[u8]) -> Option<[u8; 32]> {
        let header = decode_header(block)?;
        let digest = header.digest();
        let known = {
            let inner = self.lock();
            digest == inner.tip.digest || inner.pending.contains_key(&digest) || header.height <= inner.tip.height
        };
        if !known && let Err(why) = self.check(header.parent, block, u64::MAX - MAX_CLOCK_SKEW_MS) {
            warn!(%why, height = header.height, "cannot execute a parent block we missed");
        }
        Some(digest)
    }

    /// Apply and store a finalized block; `Ok(false)` if it was already committed. An error
    /// leaves the executor at its previous tip ([`Ledger::finalized`] stops the process on it;
    /// the simulation crashes the validator instead when its disk failed on purpose).
    pub fn try_finalized(&self, block: &[u8]) -> Result<bool> {
        self.commit(block)
    }

    /// Commit a finalized block. Returns false if it was already committed.
    fn commit(&self, block: &[u8]) -> Result<bool> {
        let header = decode_header(block).context("finalized block does not decode")?;
        let digest = header.digest();
        let mut inner = self.lock();
        if header.height <= inner.tip.height {
            return Ok(false);
        }
        if header.height != inner.tip.height + 1 || header.parent != inner.tip.digest {
            bail!(
                "finalized block {} does not extend the tip {}",
                header.height,
                inner.tip.height
            );
        }
        let pending = match inner.pending.remove(&digest) {
            Some(p) => p,
            None => {
                drop(inner);
                // Not seen before (catching up): execute it now against the tip.
                self.check(header.parent, block, u64::MAX - MAX_CLOCK_SKEW_MS)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "finalized block {} fails local execution ({e}): refusing to diverge",
                            header.height
                        )
                    })?;
                inner = self.lock();
                inner
                    .pending
                    .remove(&digest)
                    .context("block vanished after execution")?
            }
        };
        let mut frontier = inner.tip.frontier.clone();
        let mut nodes = Vec::new();
        let tx_count = pending.tx_hashes.len();
        let block_txs = Block::from_bytes(block).context("finalized block does not decode")?.txs;
        for tx in &block_txs {
            frontier.append_leaf_hash(hash_leaf(tx), |n| nodes.push(n));
        }
        assert_eq!(
            frontier.root(),
            pending.header.log_root,
            "log root mismatch after replaying the block's leaves"
        );
        inner.db.commit_block(&BlockCommit {
            height: header.height,
            digest,
            block,
            writes: &pending.writes,
            tx_hashes: &pending.tx_hashes,
            first_leaf: inner.tip.frontier.size(),
            log_nodes: &nodes,
            frontier: &frontier,
        })?;
        for h in &pending.tx_hashes {
            inner.mempool.remove(&TxHash(*h));
        }
        // Still under the executor lock: the index moves to this height together with the tip.
        let fleet_started = std::time::Instant::now();
        self.shared
            .fleet
            .write()
            .expect("fleet index lock poisoned")
            .apply_block(header.height, &pending.writes);
        self.shared.metrics.on_fleet_index_update(fleet_started.elapsed());
        inner.tip = Tip {
            height: header.height,
            digest,
            header: header.clone(),
            smt: pending.smt,
            frontier,
        };
        let tip_height = inner.tip.height;
        inner.pending.retain(|_, p| p.header.height > tip_height);
        self.shared.metrics.on_finalized(&header, tx_count, inner.mempool.len());
        drop(inner);
        crate::checkpoints::on_finalized(self, &header);
        Ok(true)
    }
}

impl Ledger for Executor {
    fn genesis(&self) -> Vec<u8> {
        self.shared.genesis_block.clone()
    }

    fn describe(&self, block: &[u8]) -> Option<BlockInfo> {
        let h = decode_header(block)?;
        Some(BlockInfo {
            digest: h.digest(),
            height: h.height,
            parent: h.parent,
        })
    }

    fn has_pending_txs(&self) -> bool {
        !self.lock().mempool.is_empty()
    }

    fn propose(&self, parent: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        let digest = self.ensure_executed(parent)?;
        self.build(digest, now_ms)
    }

    fn verify(&self, parent: &[u8], block: &[u8], now_ms: u64) -> bool {
        let Some(parent) = self.ensure_executed(parent) else {
            return false;
        };
        match self.check(parent, block, now_ms) {
            Ok(()) => true,
            Err(why) => {
                warn!(%why, "rejecting proposed block");
                false
            }
        }
    }

    fn finalized(&self, block: &[u8], _certificate: &[u8]) {
        if let Err(e) = self.try_finalized(block) {
            // A finalized block we cannot apply means our copy of the state is wrong or the
            // disk failed: continuing would serve wrong answers, so stop the process.
            error!(error = %e, "cannot apply a finalized block; stopping");
            std::process::exit(70);
        }
    }

    fn last_finalized_height(&self) -> u64 {
        self.lock().tip.height
    }

    fn on_gossip(&self, from: [u8; 32], message: &[u8]) {
        crate::checkpoints::on_gossip(self, from, message);
    }
}
