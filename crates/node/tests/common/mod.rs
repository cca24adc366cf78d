//! Test ledger shared by the consensus tests.
#![allow(dead_code)] // each test binary uses a different subset

use chipledger_node::consensus::{BlockInfo, Ledger};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// A proposer's timestamp may run ahead of a verifier's clock by at most this much.
const MAX_CLOCK_SKEW_MS: u64 = 10_000;
/// parent (32) || height (8) || timestamp (8) || payload
const HEADER_BYTES: usize = 48;

// ---------------------------------------------------------------------------------------------
// A minimal in-memory ledger: block = parent || height || timestamp || payload, digest = SHA-256.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct LedgerState {
    /// Digest of the finalized block at each height (index 0 = genesis).
    finalized: Vec<[u8; 32]>,
    /// Gossip received: (sender key, message).
    gossip: Vec<([u8; 32], Vec<u8>)>,
}

#[derive(Clone)]
pub struct TestLedger {
    /// Written into every payload this validator proposes.
    proposer: u8,
    state: Arc<Mutex<LedgerState>>,
}

fn encode_block(parent: [u8; 32], height: u64, timestamp_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut block = Vec::with_capacity(HEADER_BYTES + payload.len());
    block.extend_from_slice(&parent);
    block.extend_from_slice(&height.to_be_bytes());
    block.extend_from_slice(&timestamp_ms.to_be_bytes());
    block.extend_from_slice(payload);
    block
}

fn digest(block: &[u8]) -> [u8; 32] {
    Sha256::digest(block).into()
}

fn timestamp_ms(block: &[u8]) -> u64 {
    u64::from_be_bytes(block[40..48].try_into().expect("8 bytes"))
}

fn genesis() -> Vec<u8> {
    encode_block([0; 32], 0, 0, b"chipledger-sim-genesis")
}

impl TestLedger {
    pub fn new(proposer: u8) -> Self {
        let state = LedgerState {
            finalized: vec![digest(&genesis())],
            gossip: Vec::new(),
        };
        Self {
            proposer,
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn chain(&self) -> Vec<[u8; 32]> {
        self.state.lock().unwrap().finalized.clone()
    }

    pub fn height(&self) -> u64 {
        self.state.lock().unwrap().finalized.len() as u64 - 1
    }

    pub fn gossip(&self) -> Vec<([u8; 32], Vec<u8>)> {
        self.state.lock().unwrap().gossip.clone()
    }
}

impl Ledger for TestLedger {
    fn genesis(&self) -> Vec<u8> {
        genesis()
    }

    fn describe(&self, block: &[u8]) -> Option<BlockInfo> {
        if block.len() < HEADER_BYTES {
            return None;
        }
        Some(BlockInfo {
            digest: digest(block),
            height: u64::from_be_bytes(block[32..40].try_into().ok()?),
            parent: block[..32].try_into().ok()?,
        })
    }

    fn propose(&self, parent: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        let info = self.describe(parent)?;
        let timestamp = now_ms.max(timestamp_ms(parent) + 1);
        let payload = [self.proposer];
        Some(encode_block(info.digest, info.height + 1, timestamp, &payload))
    }

    fn verify(&self, parent: &[u8], block: &[u8], now_ms: u64) -> bool {
        let (Some(parent_info), Some(info)) = (self.describe(parent), self.describe(block)) else {
            return false;
        };
        info.parent == parent_info.digest
            && info.height == parent_info.height + 1
            && timestamp_ms(block) > timestamp_ms(parent)
            && timestamp_ms(block) <= now_ms + MAX_CLOCK_SKEW_MS
    }

    fn finalized(&self, block: &[u8], _certificate: &[u8]) {
        let info = self.describe(block).expect("finalized block describes");
        let mut state = self.state.lock().unwrap();
        let height = state.finalized.len() as u64;
        assert!(
            info.height <= height,
            "gap: got height {} expecting {height}",
            info.height
        );
        if info.height < height {
            // Redelivery after restart: must be the block we already have.
            assert_eq!(
                state.finalized[info.height as usize], info.digest,
                "redelivered block differs"
            );
            return;
        }
        assert_eq!(
            Some(&info.parent),
            state.finalized.last(),
            "finalized block does not extend tip"
        );
        state.finalized.push(info.digest);
    }

    fn last_finalized_height(&self) -> u64 {
        self.height()
    }

    fn on_gossip(&self, from: [u8; 32], message: &[u8]) {
        self.state.lock().unwrap().gossip.push((from, message.to_vec()));
    }
}
