//! On-disk storage (redb): blocks, the transaction index, the log's perfect-subtree hashes, the
//! state, and final checkpoints. A finalized block is written in one redb transaction, so a
//! crash leaves either all of it or none of it.

use std::path::Path;

use anyhow::{Context, Result};
use chipledger_state::store::{StateRead, WriteSet};
use chipledger_types::merkle::{CompletedNode, Frontier, NodeStore};
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HEIGHTS: TableDefinition<&[u8], u64> = TableDefinition::new("block_heights");
/// tx hash → (block height, leaf index).
const TXS: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("txs");
/// (level, index) → 32-byte perfect-subtree hash.
const LOG_NODES: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("log_nodes");
/// height → final checkpoint (signed note text).
const CHECKPOINTS: TableDefinition<u64, &str> = TableDefinition::new("checkpoints");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// tx hash → encoded transaction: accepted, not yet final (survives a crash).
const MEMPOOL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mempool");

const META_HEIGHT: &str = "height";
const META_FRONTIER: &str = "frontier";

/// Everything one finalized block changes.
pub struct BlockCommit<'a> {
    pub height: u64,
    pub digest: [u8; 32],
    pub block: &'a [u8],
    pub writes: &'a WriteSet,
    pub tx_hashes: &'a [[u8; 32]],
    /// Log size before this block (the first transaction's leaf index).
    pub first_leaf: u64,
    pub log_nodes: &'a [CompletedNode],
    pub frontier: &'a Frontier,
}

pub struct Db {
    db: Database,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let db = Database::create(path).with_context(|| format!("opening {}", path.display()))?;
        Self::with_tables(db)
    }

    /// Open (or create) the database over `backend` instead of a plain file: the simulation
    /// passes one that injects write failures and power loss (`chipledger-sim`).
    pub fn open_with_backend(backend: impl redb::StorageBackend, what: &str) -> Result<Db> {
        let db = Database::builder()
            .create_with_backend(backend)
            .with_context(|| format!("opening {what}"))?;
        Self::with_tables(db)
    }

    fn with_tables(db: Database) -> Result<Db> {
        let txn = db.begin_write()?;
        {
            txn.open_table(STATE)?;
            txn.open_table(BLOCKS)?;
            txn.open_table(BLOCK_HEIGHTS)?;
            txn.open_table(TXS)?;
            txn.open_table(LOG_NODES)?;
            txn.open_table(CHECKPOINTS)?;
            txn.open_table(META)?;
            txn.open_table(MEMPOOL)?;
        }
        txn.commit()?;
        Ok(Db { db })
    }

    /// Height of the last committed block, `None` for a fresh database.
    pub fn height(&self) -> Result<Option<u64>> {
        let t = self.db.begin_read()?.open_table(META)?;
        Ok(t.get(META_HEIGHT)?
            .map(|v| u64::from_be_bytes(v.value().try_into().unwrap_or([0; 8]))))
    }

    pub fn frontier(&self) -> Result<Frontier> {
        let t = self.db.begin_read()?.open_table(META)?;
        match t.get(META_FRONTIER)? {
            None => Ok(Frontier::new()),
            Some(v) => Frontier::from_bytes(v.value()).map_err(|e| anyhow::anyhow!("stored frontier: {e}")),
        }
    }

    /// Write a finalized block and everything it changes, atomically and durably.
    pub fn commit_block(&self, c: &BlockCommit<'_>) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut state = txn.open_table(STATE)?;
            for (k, v) in c.writes {
                match v {
                    Some(v) => state.insert(k.as_slice(), v.as_slice())?,
                    None => state.remove(k.as_slice())?,
                };
            }
            txn.open_table(BLOCKS)?.insert(c.height, c.block)?;
            txn.open_table(BLOCK_HEIGHTS)?.insert(c.digest.as_slice(), c.height)?;
            let mut txs = txn.open_table(TXS)?;
            let mut mempool = txn.open_table(MEMPOOL)?;
            for (i, h) in c.tx_hashes.iter().enumerate() {
                txs.insert(h.as_slice(), (c.height, c.first_leaf + i as u64))?;
                mempool.remove(h.as_slice())?;
            }
            let mut nodes = txn.open_table(LOG_NODES)?;
            for n in c.log_nodes {
                nodes.insert((n.level, n.index), n.hash.as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_HEIGHT, c.height.to_be_bytes().as_slice())?;
            meta.insert(META_FRONTIER, c.frontier.to_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Durably record accepted transactions (one write transaction, fsynced).
    pub fn mempool_put(&self, txs: &[(chipledger_types::tx::TxHash, std::sync::Arc<Vec<u8>>)]) -> Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(MEMPOOL)?;
            for (h, b) in txs {
                t.insert(h.0.as_slice(), b.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Forget transactions that will never be included (rejected or expired).
    pub fn mempool_remove(&self, hashes: &[[u8; 32]]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        // Losing this removal in a crash only means re-checking the transaction on reload.
        txn.set_durability(redb::Durability::None)?;
        {
            let mut t = txn.open_table(MEMPOOL)?;
            for h in hashes {
                t.remove(h.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every transaction of the on-disk mempool.
    pub fn mempool_all(&self) -> Result<Vec<Vec<u8>>> {
        let t = self.db.begin_read()?.open_table(MEMPOOL)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            out.push(entry?.1.value().to_vec());
        }
        Ok(out)
    }

    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let t = self.db.begin_read()?.open_table(BLOCKS)?;
        Ok(t.get(height)?.map(|v| v.value().to_vec()))
    }

    pub fn block_height(&self, digest: &[u8; 32]) -> Result<Option<u64>> {
        let t = self.db.begin_read()?.open_table(BLOCK_HEIGHTS)?;
        Ok(t.get(digest.as_slice())?.map(|v| v.value()))
    }

    /// (height, leaf index) of a finalized transaction.
    pub fn tx_location(&self, hash: &[u8; 32]) -> Result<Option<(u64, u64)>> {
        let t = self.db.begin_read()?.open_table(TXS)?;
        Ok(t.get(hash.as_slice())?.map(|v| v.value()))
    }

    pub fn put_checkpoint(&self, height: u64, note: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(CHECKPOINTS)?.insert(height, note)?;
        txn.commit()?;
        Ok(())
    }

    /// The newest final checkpoint at or below `height` (all if `None`).
    pub fn checkpoint_at_or_below(&self, height: Option<u64>) -> Result<Option<(u64, String)>> {
        let t = self.db.begin_read()?.open_table(CHECKPOINTS)?;
        let mut range = t.range(..=height.unwrap_or(u64::MAX))?;
        Ok(match range.next_back() {
            Some(entry) => {
                let (k, v) = entry?;
                Some((k.value(), v.value().to_string()))
            }
            None => None,
        })
    }

    /// A read snapshot of the finalized state.
    pub fn state(&self) -> Result<DbState> {
        Ok(DbState {
            table: self.db.begin_read()?.open_table(STATE)?,
        })
    }

    /// A read snapshot of the log's stored nodes.
    pub fn log(&self) -> Result<DbLog> {
        Ok(DbLog {
            table: self.db.begin_read()?.open_table(LOG_NODES)?,
        })
    }

    /// Every state entry, in key order (start-up rebuild of the state map).
    pub fn for_each_state(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<u64> {
        let t = self.db.begin_read()?.open_table(STATE)?;
        let mut n = 0;
        for entry in t.iter()? {
            let (k, v) = entry?;
            f(k.value(), v.value());
            n += 1;
        }
        Ok(n)
    }

    /// Every state entry under each of `prefixes`, in key order, from one read snapshot
    /// (start-up build of node-local indexes).
    pub fn for_each_state_prefixes(&self, prefixes: &[&[u8]], mut f: impl FnMut(&[u8], &[u8])) -> Result<u64> {
        let t = self.db.begin_read()?.open_table(STATE)?;
        let mut n = 0;
        for prefix in prefixes {
            for entry in t.range(*prefix..)? {
                let (k, v) = entry?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                f(k.value(), v.value());
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn tx_count(&self) -> Result<u64> {
        Ok(self.db.begin_read()?.open_table(TXS)?.len()?)
    }
}

/// Finalized state as of a read snapshot.
pub struct DbState {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl StateRead for DbState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A read error here is a disk failure, not input: the validator must stop rather than
        // execute against a state it cannot read.
        let v = self.table.get(key).expect("state table read failed");
        v.map(|v| v.value().to_vec())
    }
}

pub struct DbLog {
    table: ReadOnlyTable<(u8, u64), &'static [u8]>,
}

impl NodeStore for DbLog {
    fn node(&self, level: u8, index: u64) -> Option<[u8; 32]> {
        let v = self.table.get((level, index)).expect("log table read failed")?;
        v.value().try_into().ok()
    }
}
