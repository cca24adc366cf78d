//! The gateway's side of record proofs (issue 5): where a stored record sits in its batch (the
//! RFC 9162 audit path from its record hash to the batch root), and bounded listings of a
//! device's records. The ledger side of the proof — the batch's `CommitBatch` transaction in
//! the log under a cosigned checkpoint — comes from a validator's API; the whole proof is a
//! [`chipledger_types::record_proof::RecordProof`].
//!
//! Everything here reads the store under the caller's lock and returns owned data, so a caller
//! that shares the [`Gateway`] with the ingest path holds its lock only for a few redb reads;
//! building a batch tree (up to `MAX_BATCH_RECORDS` hashes) happens after the lock is released,
//! and [`BatchTrees`] keeps the last few.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chipledger_types::data_tx::TrustLevel;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::merkle::{Hash, MemoryStore, inclusion_proof};
use chipledger_types::record::RecordHash;
use chipledger_types::record_proof::BatchInclusion;

use crate::error::StoreError;
use crate::ingest::Gateway;
use crate::store::{BatchRow, ChainKey, StoredRecord};

/// Batch trees kept by [`BatchTrees`].
pub const MAX_CACHED_BATCH_TREES: usize = 64;
/// Leaves of all kept batch trees together (about 112 bytes each: tree nodes and index), so
/// the cache stays near 60 MB however large the batches.
pub const MAX_CACHED_TREE_LEAVES: u64 = 1 << 19;
/// Most records in one page of [`list_records`].
pub const MAX_RECORDS_PAGE: usize = 100;
/// Most store rows one [`list_records`] call reads (a trust filter may skip many).
pub const MAX_SCAN_ROWS: usize = 10_000;

/// One batch's Merkle tree over its record hashes, with each hash's leaf index.
#[derive(Debug)]
pub struct BatchTree {
    seq: u64,
    root: Hash,
    size: u64,
    tree: MemoryStore,
    index: HashMap<Hash, u64>,
}

impl BatchTree {
    /// The tree of batch `seq` from its record hashes in leaf order (as the store keeps them).
    pub fn build(seq: u64, hashes: &[Hash]) -> BatchTree {
        let tree = MemoryStore::from_leaves(hashes);
        let size = tree.size();
        let root = tree.root(size).expect("a tree holds every node of its own size");
        let index = hashes.iter().enumerate().map(|(i, h)| (*h, i as u64)).collect();
        BatchTree {
            seq,
            root,
            size,
            tree,
            index,
        }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// RFC 9162 root (what the batch's `CommitBatch` states).
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Number of records (leaves).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The audit path of the record with `hash` (`None`: not in this batch).
    pub fn inclusion(&self, gateway: &str, hash: &RecordHash) -> Option<BatchInclusion> {
        let leaf_index = *self.index.get(&hash.0)?;
        let path = inclusion_proof(&self.tree, leaf_index, self.size).expect("the leaf is inside the tree");
        Some(BatchInclusion {
            gateway: gateway.into(),
            seq: self.seq,
            root: self.root,
            leaf_index,
            size: self.size,
            path,
        })
    }
}

/// Recently used batch trees: at most [`MAX_CACHED_BATCH_TREES`] trees and
/// [`MAX_CACHED_TREE_LEAVES`] leaves together; the least recently used goes first (a client
/// proving a device's records walks many batches over and over).
#[derive(Debug, Default)]
pub struct BatchTrees {
    inner: Mutex<TreeCache>,
}

#[derive(Debug, Default)]
struct TreeCache {
    /// Batch seq → (tree, tick of its last use).
    trees: BTreeMap<u64, (Arc<BatchTree>, u64)>,
    leaves: u64,
    tick: u64,
}

impl BatchTrees {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, seq: u64) -> Option<Arc<BatchTree>> {
        let mut c = self.inner.lock().ok()?;
        c.tick += 1;
        let tick = c.tick;
        let (tree, used) = c.trees.get_mut(&seq)?;
        *used = tick;
        Some(tree.clone())
    }

    /// Builds batch `row`'s tree from `hashes`, checks it against the root the batch states,
    /// and keeps it.
    pub fn insert(&self, row: &BatchRow, hashes: &[Hash]) -> Result<Arc<BatchTree>, StoreError> {
        let tree = Arc::new(BatchTree::build(row.payload.batch_seq, hashes));
        if tree.root != row.payload.root || tree.size != u64::from(row.payload.record_count) {
            return Err(StoreError::Corrupt {
                what: "batch hashes (they do not give the batch's root)",
            });
        }
        if let Ok(mut c) = self.inner.lock() {
            c.tick += 1;
            let tick = c.tick;
            if let Some((old, _)) = c.trees.insert(tree.seq, (tree.clone(), tick)) {
                c.leaves -= old.size;
            }
            c.leaves += tree.size;
            while c.trees.len() > MAX_CACHED_BATCH_TREES || (c.leaves > MAX_CACHED_TREE_LEAVES && c.trees.len() > 1) {
                let Some(lru) = c.trees.iter().min_by_key(|(_, (_, used))| *used).map(|(seq, _)| *seq) else {
                    break;
                };
                if let Some((gone, _)) = c.trees.remove(&lru) {
                    c.leaves -= gone.size;
                }
            }
        }
        Ok(tree)
    }
}

/// A record's batch as read under the lock: its tree when cached, else its hashes.
#[derive(Clone, Debug)]
pub enum BatchLeaves {
    Tree(Arc<BatchTree>),
    Hashes(Vec<Hash>),
}

/// A stored record and, once it is cut into a batch, that batch.
#[derive(Clone, Debug)]
pub struct RecordSnapshot {
    pub record: StoredRecord,
    pub batch: Option<(BatchRow, BatchLeaves)>,
}

/// Reads the record at (`chain`, `seq`) and its batch (row, and leaves unless `trees` holds
/// them). `Ok(None)`: no such record.
pub fn read_record(
    gateway: &Gateway,
    chain: &ChainKey,
    seq: u64,
    trees: &BatchTrees,
) -> Result<Option<RecordSnapshot>, StoreError> {
    let store = gateway.store();
    let Some(record) = store.record(chain, seq)? else {
        return Ok(None);
    };
    let Some(batch_seq) = store.record_batch(chain, seq)? else {
        return Ok(Some(RecordSnapshot { record, batch: None }));
    };
    let missing = || StoreError::Corrupt {
        what: "record names a batch the store does not hold",
    };
    let row = store.batch(batch_seq)?.ok_or_else(missing)?;
    let leaves = match trees.get(batch_seq) {
        Some(tree) => BatchLeaves::Tree(tree),
        None => BatchLeaves::Hashes(store.batch_hashes(batch_seq)?.ok_or_else(missing)?),
    };
    Ok(Some(RecordSnapshot {
        record,
        batch: Some((row, leaves)),
    }))
}

/// Which records [`list_records`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this stream.
    pub stream: Option<String>,
    /// Strictly after this (stream, seq), in listing order (a page's `next`).
    pub after: Option<(String, u64)>,
    /// At most this many (clamped to 1..=[`MAX_RECORDS_PAGE`]).
    pub limit: usize,
    /// Only records accepted at this trust level or higher.
    pub min_trust: TrustLevel,
}

/// One listed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRecord {
    pub stream: String,
    pub seq: u64,
    pub hash: RecordHash,
    pub trust: TrustLevel,
    /// The batch it was cut into (`None`: pending).
    pub batch: Option<u64>,
    pub bytes: Vec<u8>,
}

/// A page of records; `next` continues it (passed as [`ListQuery::after`]) when more may follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<ListedRecord>,
    pub next: Option<(String, u64)>,
}

/// A page of `device`'s records ordered by chain (stream key) then seq, reading at most
/// [`MAX_SCAN_ROWS`] store rows.
pub fn list_records(gateway: &Gateway, device: &DeviceId, q: &ListQuery) -> Result<RecordPage, StoreError> {
    let limit = q.limit.clamp(1, MAX_RECORDS_PAGE);
    let after = match (&q.after, &q.stream) {
        (Some((stream, seq)), _) => Some((stream.as_str(), *seq)),
        // Seqs start at 1: "after seq 0" is the stream's start.
        (None, Some(stream)) => Some((stream.as_str(), 0)),
        (None, None) => None,
    };
    let mut page = RecordPage::default();
    let (mut read, mut last, mut more) = (0usize, None, false);
    gateway
        .store()
        .scan_device_records(device, after, MAX_SCAN_ROWS, |row| {
            if q.stream.as_ref().is_some_and(|s| *s != row.chain.stream) {
                return false;
            }
            read += 1;
            last = Some((row.chain.stream.clone(), row.seq));
            if row.trust >= q.min_trust {
                page.records.push(ListedRecord {
                    stream: row.chain.stream,
                    seq: row.seq,
                    hash: row.hash,
                    trust: row.trust,
                    batch: row.batch,
                    bytes: row.bytes.to_vec(),
                });
            }
            more = page.records.len() == limit || read == MAX_SCAN_ROWS;
            !more
        })?;
    if more {
        page.next = last;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatchStatus;
    use chipledger_types::data_tx::{CommitBatch, batch_root};
    use chipledger_types::merkle::{hash_leaf, verify_inclusion};

    fn hashes(n: u8) -> Vec<Hash> {
        (1..=n).map(|i| [i; 32]).collect()
    }

    fn row(seq: u64, hashes: &[Hash]) -> BatchRow {
        BatchRow {
            payload: CommitBatch {
                gateway: "gw".into(),
                batch_seq: seq,
                root: batch_root(hashes),
                record_count: hashes.len() as u32,
                first_timestamp_ms: 0,
                last_timestamp_ms: 0,
                heads: Vec::new(),
            },
            status: BatchStatus::Committed(None),
        }
    }

    #[test]
    fn every_leaf_of_a_batch_tree_proves_against_the_batch_root() {
        for n in [1u8, 2, 5, 8, 13] {
            let h = hashes(n);
            let tree = BatchTree::build(3, &h);
            assert_eq!(tree.root(), batch_root(&h));
            for (i, leaf) in h.iter().enumerate() {
                let p = tree.inclusion("gw", &RecordHash(*leaf)).unwrap();
                assert_eq!((p.seq, p.leaf_index, p.size), (3, i as u64, n as u64));
                verify_inclusion(&hash_leaf(leaf), p.leaf_index, p.size, &p.path, &p.root).unwrap();
            }
            assert!(tree.inclusion("gw", &RecordHash([0xee; 32])).is_none());
        }
    }

    #[test]
    fn the_cache_checks_roots_and_stays_bounded() {
        let trees = BatchTrees::new();
        let h = hashes(4);
        assert!(matches!(
            trees.insert(&row(1, &h), &h[..3]),
            Err(StoreError::Corrupt { .. })
        ));
        for seq in 1..=(MAX_CACHED_BATCH_TREES as u64 + 2) {
            trees.insert(&row(seq, &h), &h).unwrap();
        }
        assert!(
            trees.get(1).is_none() && trees.get(2).is_none(),
            "the oldest went first"
        );
        assert!(trees.get(MAX_CACHED_BATCH_TREES as u64 + 2).is_some());
    }
}
