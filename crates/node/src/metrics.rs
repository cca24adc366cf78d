//! Prometheus metrics (text exposition format 0.0.4), kept in atomics so reading them never
//! blocks the ledger.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use chipledger_types::block::BlockHeader;

/// Finality samples kept for the percentiles.
const LATENCY_SAMPLES_MAX: usize = 4096;

#[derive(Default)]
pub struct Metrics {
    height: AtomicU64,
    log_size: AtomicU64,
    txs_finalized: AtomicU64,
    blocks_finalized: AtomicU64,
    mempool_txs: AtomicU64,
    final_checkpoint_height: AtomicU64,
    finality_ms_sum: AtomicU64,
    finality_count: AtomicU64,
    latencies_ms: Mutex<VecDeque<u64>>,
    fleet_index_update_us: AtomicU64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    pub fn set_height(&self, height: u64, log_size: u64) {
        self.height.store(height, Relaxed);
        self.log_size.store(log_size, Relaxed);
    }

    pub fn set_mempool(&self, n: usize) {
        self.mempool_txs.store(n as u64, Relaxed);
    }

    pub fn set_final_checkpoint(&self, height: u64) {
        self.final_checkpoint_height.store(height, Relaxed);
    }

    /// Record a finalized block; finality latency = now − the proposer's timestamp.
    pub fn on_finalized(&self, header: &BlockHeader, txs: usize, mempool: usize) {
        self.set_height(header.height, header.log_size);
        self.set_mempool(mempool);
        self.txs_finalized.fetch_add(txs as u64, Relaxed);
        self.blocks_finalized.fetch_add(1, Relaxed);
        let latency = now_ms().saturating_sub(header.timestamp_ms);
        self.finality_ms_sum.fetch_add(latency, Relaxed);
        self.finality_count.fetch_add(1, Relaxed);
        let mut l = self.latencies_ms.lock().expect("metrics lock");
        l.push_back(latency);
        if l.len() > LATENCY_SAMPLES_MAX {
            l.pop_front();
        }
    }

    /// Time spent updating the node-local fleet index on a block commit.
    pub fn on_fleet_index_update(&self, took: std::time::Duration) {
        self.fleet_index_update_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// p-th percentile (0..=100) of recent finality latencies.
    pub fn finality_percentile_ms(&self, p: u64) -> Option<u64> {
        let mut v: Vec<u64> = self
            .latencies_ms
            .lock()
            .expect("metrics lock")
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(v[((v.len() - 1) as u64 * p / 100) as usize])
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            "chipledger_height",
            "Height of the last finalized block.",
            "gauge",
            self.height.load(Relaxed),
        );
        gauge(
            "chipledger_log_size",
            "Leaves in the transaction log.",
            "gauge",
            self.log_size.load(Relaxed),
        );
        gauge(
            "chipledger_txs_finalized_total",
            "Transactions finalized since start.",
            "counter",
            self.txs_finalized.load(Relaxed),
        );
        gauge(
            "chipledger_blocks_finalized_total",
            "Blocks finalized since start.",
            "counter",
            self.blocks_finalized.load(Relaxed),
        );
        gauge(
            "chipledger_mempool_txs",
            "Transactions waiting in the mempool.",
            "gauge",
            self.mempool_txs.load(Relaxed),
        );
        gauge(
            "chipledger_final_checkpoint_height",
            "Height of the newest checkpoint with a quorum of cosignatures.",
            "gauge",
            self.final_checkpoint_height.load(Relaxed),
        );
        gauge(
            "chipledger_fleet_index_update_us_total",
            "Microseconds spent updating the fleet index on block commits since start.",
            "counter",
            self.fleet_index_update_us.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP chipledger_finality_ms Proposal-to-finalization latency.\n# TYPE chipledger_finality_ms summary"
        );
        for q in [50u64, 99] {
            if let Some(v) = self.finality_percentile_ms(q) {
                let _ = writeln!(out, "chipledger_finality_ms{{quantile=\"0.{q}\"}} {v}");
            }
        }
        let _ = writeln!(out, "chipledger_finality_ms_sum {}", self.finality_ms_sum.load(Relaxed));
        let _ = writeln!(
            out,
            "chipledger_finality_ms_count {}",
            self.finality_count.load(Relaxed)
        );
        out
    }
}
