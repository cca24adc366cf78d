//! The consensus adapter: the only module that knows the BFT engine (commonware simplex).
//!
//! The rest of the node sees blocks as opaque, already-encoded byte strings and talks to the
//! engine through [`Ledger`] (what the engine asks of the application) and [`EngineHandle`]
//! (what the application may ask of the engine). An engine upgrade touches this module only.

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

    /// Check that `block` is a valid child of `parent` (may execute it speculatively).
    /// `now_ms` is the verifier's clock, for bounding the proposer's timestamp.
    fn verify(&self, parent: &[u8], block: &[u8], now_ms: u64) -> bool;

    /// A block was finalized. Called in strictly increasing height order without gaps, starting
    /// at height 1; after a restart a block may be delivered again, so this must be idempotent.
    /// `certificate` is the engine's encoded finalization certificate (opaque to the ledger).
    fn finalized(&self, block: &[u8], certificate: &[u8]);

    /// Height of the last block this ledger has durably applied (0 = only genesis). The engine
    /// uses it to resume delivery after a restart.
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
