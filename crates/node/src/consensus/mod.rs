//! The consensus adapter: the only module that knows the BFT engine (commonware simplex).
//!
//! The rest of the node sees blocks as opaque, already-encoded byte strings and talks to the
//! engine through [`Ledger`] (what the engine asks of the application) and [`EngineHandle`]
//! (what the application may ask of the engine). An engine upgrade touches this module only.
//!
//! Entry points:
//! - [`start`] runs a production validator (commonware tokio runtime, authenticated `lookup`
//!   p2p, on-disk storage) and the node's own future on the same tokio runtime; [`spawn`] runs
//!   it on a dedicated thread instead. See `production.rs` for how the runtimes coexist.
//! - [`sim`] runs the same wiring on the deterministic runtime and simulated network.
//!
//! Wiring (engine.rs): simplex (ed25519 votes, round-robin leaders, one epoch) orders block
//! digests; marshal's `Inline` wrapper fetches parents and calls [`Ledger::propose`] /
//! [`Ledger::verify`]; marshal orders finalized blocks, backfills missing ones from peers and
//! hands them to [`Ledger::finalized`] gap-free, acknowledging each after the call returns.
//! Restart safety comes from commonware's journals: simplex records its votes before sending
//! them, marshal its archives and processed height (partitions under [`PARTITION_PREFIX`]).

mod app;
mod block;
mod config;
mod engine;
mod gossip;
mod production;
pub mod sim;
mod storage;

pub use block::{LedgerBlock, MAX_BLOCK_BYTES};
pub use config::{ConfigError, PARTITION_PREFIX, Timeouts, ValidatorConfig, ValidatorPeer};
pub use gossip::{EngineHandle, GOSSIP_QUEUE_MAX, GossipError, MAX_GOSSIP_BYTES};
pub use production::{StartError, spawn, start};

/// 32-byte SHA-256 digest identifying a block (the hash of its header, computed by the ledger).
pub type BlockDigest = [u8; 32];

/// What the consensus engine needs from the ledger. Implemented by the node's executor; the
/// simulation tests implement it too. All methods must be deterministic functions of their
/// inputs and of previously finalized blocks (no wall clock: time comes in as `now_ms`).
/// How long a leader with nothing to propose waits for a transaction before proposing an
/// empty block: well under the leader timeout (1 s), so views never time out for it; a
/// transaction that arrives meanwhile is proposed within [`IDLE_POLL`].
pub const IDLE_PROPOSE_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// How often a waiting leader looks for transactions.
pub const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

pub trait Ledger: Clone + Send + Sync + 'static {
    /// The encoded genesis block (height 0). Every validator must return identical bytes.
    fn genesis(&self) -> Vec<u8>;

    /// Digest (header hash), height and parent digest of an encoded block, or `None` if the
    /// bytes are not a well-formed block. Must be cheap and pure.
    fn describe(&self, block: &[u8]) -> Option<BlockInfo>;

    /// Build a new block extending `parent` (an encoded block previously returned by
    /// `propose`/accepted by `verify`, or genesis). `now_ms` is the proposer's clock (runtime
    /// clock, so simulations stay deterministic). Returns `None` if no block can be built now.
    fn propose(&self, parent: &[u8], now_ms: u64) -> Option<Vec<u8>>;

    /// Whether transactions wait for a block. While none do, a leader waits up to
    /// [`IDLE_PROPOSE_DELAY`] before proposing (an empty block), so an idle network does not
    /// spin through dozens of empty blocks a second. The default (always `true`) never waits.
    fn has_pending_txs(&self) -> bool {
        true
    }

    /// Check that `block` is a valid child of `parent` (may execute it speculatively).
    /// `now_ms` is the verifier's clock, for bounding the proposer's timestamp.
    fn verify(&self, parent: &[u8], block: &[u8], now_ms: u64) -> bool;

    /// A block was finalized. Called in strictly increasing height order without gaps, starting
    /// at `last_finalized_height() + 1`; blocks at or below `last_finalized_height()` are not
    /// delivered again, but the implementation should still be idempotent.
    /// `certificate` is the engine's encoded finalization certificate (opaque to the ledger). It
    /// is **empty** when the block was finalized only implicitly, by a certificate on a
    /// descendant (typical for blocks obtained by backfill): finality of a block is proven by
    /// any later block's certificate.
    ///
    /// Called from a consensus task: return promptly (the engine delivers at most 16 blocks
    /// ahead of the acknowledgement this return gives).
    fn finalized(&self, block: &[u8], certificate: &[u8]);

    /// Height of the last block this ledger has durably applied (0 = only genesis). The engine
    /// uses it to resume delivery after a restart (and replays from its own archive if the
    /// ledger is behind what consensus already delivered).
    fn last_finalized_height(&self) -> u64;

    /// A message from another validator on the ledger's own gossip channel (e.g. checkpoint
    /// cosignatures). `from` is the sender's 32-byte ed25519 consensus public key.
    fn on_gossip(&self, from: [u8; 32], message: &[u8]);
}

/// What [`Ledger::describe`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub digest: BlockDigest,
    pub height: u64,
    pub parent: BlockDigest,
}
