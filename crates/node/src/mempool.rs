//! The mempool: admitted transactions waiting for a block. Bounded in count and bytes, with a
//! per-organisation share so one busy organisation cannot crowd out the others, deduplicated by
//! hash, and drained round-robin across organisations (each in sequence-number order).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipledger_types::tx::TxHash;

/// Most transactions held at once.
pub const MAX_MEMPOOL_TXS: usize = 100_000;
/// Most bytes held at once.
pub const MAX_MEMPOOL_BYTES: usize = 128 * 1024 * 1024;
/// Most transactions one organisation may have waiting.
pub const MAX_MEMPOOL_TXS_PER_ORG: usize = 25_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MempoolError {
    #[error("transaction is already waiting in the mempool")]
    Duplicate,
    #[error("mempool is full ({0} transactions or {1} bytes); retry later")]
    Full(usize, usize),
    #[error("organisation '{0}' already has {1} transactions waiting; retry later")]
    OrgFull(String, usize),
}

struct Entry {
    bytes: Arc<Vec<u8>>,
    org: String,
    seq: u64,
    /// Execution cost in weight units (`executor::tx_weight`).
    weight: u32,
    /// When it was admitted (node-local wall clock; never reaches the state machine).
    added: Instant,
}

/// What one block may take from the mempool.
#[derive(Clone, Copy, Debug)]
pub struct BlockBudget {
    pub txs: usize,
    pub bytes: usize,
    pub weight: u64,
}

#[derive(Default)]
pub struct Mempool {
    by_hash: HashMap<TxHash, Entry>,
    by_org: BTreeMap<String, BTreeMap<(u64, TxHash), ()>>,
    bytes: usize,
}

impl Mempool {
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn insert(
        &mut self,
        hash: TxHash,
        bytes: Arc<Vec<u8>>,
        org: &str,
        seq: u64,
        weight: u32,
    ) -> Result<(), MempoolError> {
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        if self.by_hash.len() >= MAX_MEMPOOL_TXS || self.bytes + bytes.len() > MAX_MEMPOOL_BYTES {
            return Err(MempoolError::Full(MAX_MEMPOOL_TXS, MAX_MEMPOOL_BYTES));
        }
        let queue = self.by_org.entry(org.to_string()).or_default();
        if queue.len() >= MAX_MEMPOOL_TXS_PER_ORG {
            return Err(MempoolError::OrgFull(org.to_string(), queue.len()));
        }
        queue.insert((seq, hash), ());
        self.bytes += bytes.len();
        self.by_hash.insert(
            hash,
            Entry {
                bytes,
                org: org.to_string(),
                seq,
                weight,
                added: Instant::now(),
            },
        );
        Ok(())
    }

    pub fn remove(&mut self, hash: &TxHash) -> bool {
        let Some(e) = self.by_hash.remove(hash) else {
            return false;
        };
        self.bytes -= e.bytes.len();
        if let Some(q) = self.by_org.get_mut(&e.org) {
            q.remove(&(e.seq, *hash));
            if q.is_empty() {
                self.by_org.remove(&e.org);
            }
        }
        true
    }

    /// Up to `max` transactions that have waited at least `age`, oldest organisations' first.
    pub fn older_than(&self, age: Duration, max: usize) -> Vec<Arc<Vec<u8>>> {
        let now = Instant::now();
        self.by_org
            .values()
            .flat_map(|q| q.keys())
            .filter_map(|(_, h)| self.by_hash.get(h))
            .filter(|e| now.duration_since(e.added) >= age)
            .take(max)
            .map(|e| e.bytes.clone())
            .collect()
    }

    /// Up to `max.txs` transactions totalling at most `max.bytes` and `max.weight`, taken one
    /// organisation at a time in turn, each organisation's in sequence order; `skip` filters
    /// out transactions already in the chain being extended.
    pub fn select(&self, max: BlockBudget, skip: impl Fn(&TxHash) -> bool) -> Vec<(TxHash, Arc<Vec<u8>>)> {
        let mut queues: Vec<_> = self.by_org.values().map(|q| q.keys().peekable()).collect();
        let (mut out, mut bytes, mut weight) = (Vec::new(), 0usize, 0u64);
        while out.len() < max.txs && !queues.is_empty() {
            let mut progressed = false;
            for q in queues.iter_mut() {
                let Some((_, hash)) = q.find(|(_, h)| !skip(h)) else {
                    continue;
                };
                let e = &self.by_hash[hash];
                if bytes + e.bytes.len() > max.bytes
                    || weight + u64::from(e.weight) > max.weight
                    || out.len() >= max.txs
                {
                    return out;
                }
                bytes += e.bytes.len();
                weight += u64::from(e.weight);
                out.push((*hash, e.bytes.clone()));
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> TxHash {
        TxHash([i; 32])
    }

    #[test]
    fn dedup_fair_order_and_bounds() {
        let mut m = Mempool::default();
        for i in 0..6u8 {
            m.insert(h(i), Arc::new(vec![i; 10]), "a", 10 - i as u64, 1).unwrap();
        }
        m.insert(h(100), Arc::new(vec![0; 10]), "b", 1, 1).unwrap();
        assert_eq!(
            m.insert(h(100), Arc::new(vec![0; 10]), "b", 1, 1),
            Err(MempoolError::Duplicate)
        );
        let budget = |txs, bytes| BlockBudget {
            txs,
            bytes,
            weight: 1000,
        };
        let picked: Vec<TxHash> = m
            .select(budget(3, 1000), |_| false)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        // a's lowest sequence first, then b's, then a's next.
        assert_eq!(picked, vec![h(5), h(100), h(4)]);
        let picked = m.select(budget(100, 25), |h| h.0[0] == 5);
        assert_eq!(picked.len(), 2);
        assert!(m.remove(&h(5)));
        assert!(!m.remove(&h(5)));
        assert_eq!(m.len(), 6);
    }

    #[test]
    fn weight_budget_stops_a_block_of_expensive_transactions() {
        let mut m = Mempool::default();
        for i in 0..10u8 {
            m.insert(h(i), Arc::new(vec![i; 10]), "a", u64::from(i) + 1, 40)
                .unwrap();
        }
        let budget = BlockBudget {
            txs: 100,
            bytes: 10_000,
            weight: 100,
        };
        let picked: Vec<TxHash> = m.select(budget, |_| false).into_iter().map(|(h, _)| h).collect();
        assert_eq!(
            picked,
            vec![h(0), h(1)],
            "two of weight 40 fit in 100, a third does not"
        );
    }
}
