//! The gateway's record store (redb, one file). Every write that an ack or a batch depends on is
//! one redb write transaction with the default (immediate, fsynced) durability, so a crash
//! leaves either all of it or none of it.
//!
//! Tables (integers big-endian, so a chain's records and the queues iterate in order):
//!
//! | table          | key                              | value                                         |
//! |----------------|----------------------------------|-----------------------------------------------|
//! | `records`      | device ‖ len(stream) ‖ stream ‖ seq | hash ‖ trust ‖ record bytes (as received)  |
//! | `record_batch` | record key                       | batch seq the record was committed in         |
//! | `chains`       | device ‖ len(stream) ‖ stream    | head seq ‖ head hash                          |
//! | `pending`      | arrival index                    | [`PendingRecord`] (accepted, not yet batched) |
//! | `batches`      | batch seq                        | status ‖ tx hash ‖ `CommitBatch` fields (CBOR)|
//! | `batch_hashes` | batch seq                        | the batch's record hashes, in leaf order      |
//! | `anomalies`    | queue index                      | `ReportChainAnomaly` fields (CBOR), unsent    |
//! | `evidence`     | record hash                      | bytes of a forked record (not in any batch)   |
//!
//! Record bytes are the device's tagged COSE_Sign1 whose payload is COSE_Encrypt0 ciphertext:
//! the store never sees plaintext or a data key.

use std::collections::BTreeMap;
use std::path::Path;

use chipledger_types::cbor::{Decoder, Encoder, Limits};
use chipledger_types::data_tx::{CommitBatch, ReportChainAnomaly, TrustLevel};
use chipledger_types::device_tx::{DeviceId, Fields};
use chipledger_types::merkle::Hash;
use chipledger_types::record::RecordHash;
use chipledger_types::tx::TxHash;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::StoreError;

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const RECORD_BATCH: TableDefinition<&[u8], u64> = TableDefinition::new("record_batch");
const CHAINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chains");
const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const BATCH_HASHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batch_hashes");
const ANOMALIES: TableDefinition<u64, &[u8]> = TableDefinition::new("anomalies");
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");

const ID: usize = 20;
const HASH: usize = 32;

/// One device+stream chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainKey {
    pub device: DeviceId,
    pub stream: String,
}

impl ChainKey {
    /// `device ‖ len(stream) ‖ stream` (streams are at most 64 ASCII bytes).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ID + 1 + self.stream.len() + 8);
        self.append_to(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<(ChainKey, &[u8]), StoreError> {
        let corrupt = StoreError::Corrupt { what: "chain key" };
        let (id, rest) = bytes
            .split_first_chunk::<ID>()
            .ok_or(StoreError::Corrupt { what: "chain key" })?;
        let (&len, rest) = rest.split_first().ok_or(StoreError::Corrupt { what: "chain key" })?;
        let (stream, rest) = rest.split_at_checked(len as usize).ok_or(corrupt)?;
        let stream = String::from_utf8(stream.to_vec()).map_err(|_| StoreError::Corrupt { what: "chain key" })?;
        Ok((
            ChainKey {
                device: DeviceId(*id),
                stream,
            },
            rest,
        ))
    }

    fn record_key(&self, seq: u64) -> Vec<u8> {
        let mut key = self.encode();
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// [`ChainKey::encode`] appended to `out`.
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.device.0);
        out.push(self.stream.len() as u8);
        out.extend_from_slice(self.stream.as_bytes());
    }
}

/// An accepted record waiting for a batch: everything the batch needs except its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRecord {
    pub chain: ChainKey,
    pub seq: u64,
    pub hash: RecordHash,
    pub trust: TrustLevel,
    pub timestamp_ms: u64,
    /// False for a late record filling a gap (`out_of_order`): committed, but moves no head.
    pub moves_head: bool,
}

impl PendingRecord {
    /// Appends `seq ‖ hash ‖ trust ‖ timestamp ‖ moves_head ‖ chain key` to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.hash.0);
        out.push(self.trust as u8);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.push(u8::from(self.moves_head));
        self.chain.append_to(out);
    }

    fn decode(bytes: &[u8]) -> Result<PendingRecord, StoreError> {
        let corrupt = || StoreError::Corrupt { what: "pending record" };
        let (seq, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (hash, rest) = rest.split_first_chunk::<HASH>().ok_or_else(corrupt)?;
        let (&trust, rest) = rest.split_first().ok_or_else(corrupt)?;
        let (ts, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (&moves, rest) = rest.split_first().ok_or_else(corrupt)?;
        let (chain, rest) = ChainKey::decode(rest)?;
        if !rest.is_empty() || moves > 1 {
            return Err(corrupt());
        }
        Ok(PendingRecord {
            chain,
            seq: u64::from_be_bytes(*seq),
            hash: RecordHash(*hash),
            trust: trust_from_u8(trust).ok_or_else(corrupt)?,
            timestamp_ms: u64::from_be_bytes(*ts),
            moves_head: moves == 1,
        })
    }
}

fn trust_from_u8(v: u8) -> Option<TrustLevel> {
    TrustLevel::ALL.into_iter().find(|t| *t as u8 == v)
}

/// A record as stored: its hash, trust level and exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub hash: RecordHash,
    pub trust: TrustLevel,
    pub bytes: Vec<u8>,
}

/// Where a batch is on its way to the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Cut and durable, not yet handed to the ledger (or refused in transit).
    Pending,
    /// Submitted in this transaction; not known final yet.
    Submitted(TxHash),
    /// Final on the ledger (the transaction hash when the gateway knows it).
    Committed(Option<TxHash>),
}

impl BatchStatus {
    fn encode(self, out: &mut Vec<u8>) {
        let (tag, tx) = match self {
            BatchStatus::Pending => (0, None),
            BatchStatus::Submitted(tx) => (1, Some(tx)),
            BatchStatus::Committed(tx) => (2, tx),
        };
        out.push(tag);
        out.push(u8::from(tx.is_some()));
        out.extend_from_slice(&tx.map_or([0; 32], |t| t.0));
    }

    fn decode(bytes: &[u8]) -> Result<(BatchStatus, &[u8]), StoreError> {
        let corrupt = || StoreError::Corrupt { what: "batch status" };
        let (&[tag, has_tx], rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let (tx, rest) = rest.split_first_chunk::<HASH>().ok_or_else(corrupt)?;
        let tx = (has_tx == 1).then_some(TxHash(*tx));
        let status = match (tag, tx) {
            (0, None) => BatchStatus::Pending,
            (1, Some(tx)) => BatchStatus::Submitted(tx),
            (2, tx) => BatchStatus::Committed(tx),
            _ => return Err(corrupt()),
        };
        Ok((status, rest))
    }
}

/// A batch as stored: the payload submitted to the ledger and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRow {
    pub payload: CommitBatch,
    pub status: BatchStatus,
}

impl BatchRow {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.status.encode(&mut out);
        out.extend_from_slice(&encode_fields(&self.payload));
        out
    }

    fn decode(bytes: &[u8]) -> Result<BatchRow, StoreError> {
        let (status, rest) = BatchStatus::decode(bytes)?;
        Ok(BatchRow {
            payload: decode_fields(rest, "batch")?,
            status,
        })
    }
}

fn encode_fields<T: Fields>(value: &T) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(T::ARITY);
    value.encode_fields(&mut e);
    e.into_bytes()
}

fn decode_fields<T: Fields>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    let wrap = |source| StoreError::Decode { what, source };
    let mut d = Decoder::new(bytes, Limits::STATE).map_err(wrap)?;
    d.array_of(T::ARITY).map_err(wrap)?;
    let value = T::decode_fields(&mut d).map_err(wrap)?;
    d.end();
    d.finish().map_err(wrap)?;
    Ok(value)
}

/// Everything one accepted record changes, written in one transaction before its ack.
#[derive(Clone, Debug)]
pub struct AcceptWrite<'a> {
    pub pending_index: u64,
    pub record: &'a PendingRecord,
    pub bytes: &'a [u8],
    /// The chain's new head, when the record moves it.
    pub new_head: Option<(u64, RecordHash)>,
    pub anomaly: Option<(u64, &'a ReportChainAnomaly)>,
}

/// A forked record kept as evidence: its hash and bytes.
pub type Evidence<'a> = (RecordHash, &'a [u8]);

/// Everything one group of records changes ([`Store::write_group`]): one transaction, one
/// fsync, before any of them is acked.
#[derive(Clone, Debug, Default)]
pub struct GroupWrite<'a> {
    /// Accepted records: durable pending index, the record, its bytes as received.
    pub records: Vec<(u64, &'a PendingRecord, &'a [u8])>,
    /// Chains whose head moved, with the head after the group.
    pub heads: Vec<(&'a ChainKey, u64, RecordHash)>,
    /// Anomaly reports by queue index, with a forked record's bytes kept as evidence.
    pub anomalies: Vec<(u64, &'a ReportChainAnomaly, Option<Evidence<'a>>)>,
}

impl GroupWrite<'_> {
    /// Nothing to write (the transaction is skipped).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.heads.is_empty() && self.anomalies.is_empty()
    }
}

/// One read transaction over the records table, for looking up many records.
pub struct RecordReader {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    key: Vec<u8>,
}

impl RecordReader {
    /// The hash and trust level of the stored record at (chain, seq), if any.
    pub fn get(&mut self, chain: &ChainKey, seq: u64) -> Result<Option<(RecordHash, TrustLevel)>, StoreError> {
        self.key.clear();
        chain.append_to(&mut self.key);
        self.key.extend_from_slice(&seq.to_be_bytes());
        let Some(v) = self.table.get(self.key.as_slice())? else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt { what: "record" };
        let (hash, rest) = v.value().split_first_chunk::<HASH>().ok_or_else(corrupt)?;
        let trust = rest.first().and_then(|&t| trust_from_u8(t)).ok_or_else(corrupt)?;
        Ok(Some((RecordHash(*hash), trust)))
    }
}

/// What a restart finds on disk.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub heads: BTreeMap<ChainKey, (u64, RecordHash)>,
    pub pending: Vec<(u64, PendingRecord)>,
    /// Batches not yet committed, by seq.
    pub open_batches: BTreeMap<u64, BatchRow>,
    pub next_pending_index: u64,
    pub next_anomaly_index: u64,
    pub next_batch_seq: u64,
}

/// The redb record store.
pub struct Store {
    db: Database,
    /// Test hook: every [`Store::write_group`] fails while set (a full disk, an I/O error).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Opens (or creates) the store at `path` and loads what a gateway resumes from.
    pub fn open(path: &Path) -> Result<(Store, Loaded), StoreError> {
        Self::from_database(Database::create(path)?)
    }

    /// [`Store::open`] over a given storage backend (the simulator's faulty disk).
    pub fn open_with_backend(backend: impl redb::StorageBackend) -> Result<(Store, Loaded), StoreError> {
        Self::from_database(Database::builder().create_with_backend(backend)?)
    }

    fn from_database(db: Database) -> Result<(Store, Loaded), StoreError> {
        let txn = db.begin_write()?;
        {
            txn.open_table(RECORDS)?;
            txn.open_table(RECORD_BATCH)?;
            txn.open_table(CHAINS)?;
            txn.open_table(PENDING)?;
            txn.open_table(BATCHES)?;
            txn.open_table(BATCH_HASHES)?;
            txn.open_table(ANOMALIES)?;
            txn.open_table(EVIDENCE)?;
        }
        txn.commit()?;
        let store = Store {
            db,
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        };
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read()?;
        let mut loaded = Loaded::default();
        for row in txn.open_table(CHAINS)?.iter()? {
            let (k, v) = row?;
            let (chain, rest) = ChainKey::decode(k.value())?;
            let head = decode_head(v.value())?;
            if !rest.is_empty() {
                return Err(StoreError::Corrupt { what: "chain key" });
            }
            loaded.heads.insert(chain, head);
        }
        for row in txn.open_table(PENDING)?.iter()? {
            let (k, v) = row?;
            loaded.pending.push((k.value(), PendingRecord::decode(v.value())?));
        }
        let batches = txn.open_table(BATCHES)?;
        for row in batches.iter()? {
            let (k, v) = row?;
            let batch = BatchRow::decode(v.value())?;
            if !matches!(batch.status, BatchStatus::Committed(_)) {
                loaded.open_batches.insert(k.value(), batch);
            }
        }
        let next = |last: Option<u64>| last.map_or(1, |l| l + 1);
        loaded.next_pending_index = next(loaded.pending.last().map(|(i, _)| *i));
        loaded.next_batch_seq = next(batches.last()?.map(|(k, _)| k.value()));
        loaded.next_anomaly_index = next(txn.open_table(ANOMALIES)?.last()?.map(|(k, _)| k.value()));
        Ok(loaded)
    }

    /// The stored record at (chain, seq), if any.
    pub fn record(&self, chain: &ChainKey, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let Some(v) = table.get(chain.record_key(seq).as_slice())? else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt { what: "record" };
        let (hash, rest) = v.value().split_first_chunk::<HASH>().ok_or_else(corrupt)?;
        let (&trust, bytes) = rest.split_first().ok_or_else(corrupt)?;
        Ok(Some(StoredRecord {
            hash: RecordHash(*hash),
            trust: trust_from_u8(trust).ok_or_else(corrupt)?,
            bytes: bytes.to_vec(),
        }))
    }

    /// A reader for many record lookups in one read transaction.
    pub fn reader(&self) -> Result<RecordReader, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(RecordReader {
            table: txn.open_table(RECORDS)?,
            key: Vec::new(),
        })
    }

    /// Durably stores an accepted record, its pending entry, the chain's new head and an
    /// anomaly report, all in one transaction.
    pub fn accept(&self, w: &AcceptWrite<'_>) -> Result<(), StoreError> {
        let chain = &w.record.chain;
        self.write_group(&GroupWrite {
            records: vec![(w.pending_index, w.record, w.bytes)],
            heads: w.new_head.map(|(seq, hash)| (chain, seq, hash)).into_iter().collect(),
            anomalies: w
                .anomaly
                .map(|(index, report)| (index, report, None))
                .into_iter()
                .collect(),
        })
    }

    /// Durably stores a group: its accepted records and their pending entries, the chains'
    /// new heads, anomaly reports and fork evidence, all in one transaction (one fsync).
    pub fn write_group(&self, w: &GroupWrite<'_>) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                what: "store (injected write failure)",
            });
        }
        let txn = self.db.begin_write()?;
        {
            let mut records = txn.open_table(RECORDS)?;
            let mut pending = txn.open_table(PENDING)?;
            let (mut key, mut value) = (Vec::new(), Vec::new());
            for &(index, record, bytes) in &w.records {
                key.clear();
                record.chain.append_to(&mut key);
                key.extend_from_slice(&record.seq.to_be_bytes());
                value.clear();
                value.extend_from_slice(&record.hash.0);
                value.push(record.trust as u8);
                value.extend_from_slice(bytes);
                records.insert(key.as_slice(), value.as_slice())?;
                value.clear();
                record.encode_into(&mut value);
                pending.insert(index, value.as_slice())?;
            }
            let mut chains = txn.open_table(CHAINS)?;
            for &(chain, seq, hash) in &w.heads {
                key.clear();
                chain.append_to(&mut key);
                chains.insert(key.as_slice(), encode_head(seq, hash).as_slice())?;
            }
            let mut anomalies = txn.open_table(ANOMALIES)?;
            let mut evidence = txn.open_table(EVIDENCE)?;
            for &(index, report, kept) in &w.anomalies {
                anomalies.insert(index, encode_fields(report).as_slice())?;
                if let Some((hash, bytes)) = kept {
                    evidence.insert(hash.0.as_slice(), bytes)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Queues an anomaly report and, for a fork, keeps the conflicting record as evidence.
    pub fn record_anomaly(
        &self,
        index: u64,
        report: &ReportChainAnomaly,
        evidence: Option<(RecordHash, &[u8])>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(ANOMALIES)?
                .insert(index, encode_fields(report).as_slice())?;
            if let Some((hash, bytes)) = evidence {
                txn.open_table(EVIDENCE)?.insert(hash.0.as_slice(), bytes)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The bytes of a forked record kept as evidence.
    pub fn evidence(&self, hash: &RecordHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EVIDENCE)?;
        Ok(table.get(hash.0.as_slice())?.map(|v| v.value().to_vec()))
    }

    /// Unsent anomaly reports, oldest first.
    pub fn anomalies(&self) -> Result<Vec<(u64, ReportChainAnomaly)>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(ANOMALIES)?.iter()? {
            let (k, v) = row?;
            out.push((k.value(), decode_fields(v.value(), "anomaly report")?));
        }
        Ok(out)
    }

    /// Drops an anomaly report once the ledger has it.
    pub fn remove_anomaly(&self, index: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(ANOMALIES)?.remove(index)?;
        txn.commit()?;
        Ok(())
    }

    /// Writes a new batch and takes its records off the pending list, in one transaction.
    pub fn cut_batch(
        &self,
        batch: &BatchRow,
        hashes: &[Hash],
        records: &[(u64, PendingRecord)],
    ) -> Result<(), StoreError> {
        let seq = batch.payload.batch_seq;
        let txn = self.db.begin_write()?;
        {
            txn.open_table(BATCHES)?.insert(seq, batch.encode().as_slice())?;
            txn.open_table(BATCH_HASHES)?.insert(seq, hashes.concat().as_slice())?;
            let mut pending = txn.open_table(PENDING)?;
            let mut record_batch = txn.open_table(RECORD_BATCH)?;
            for (index, r) in records {
                pending.remove(*index)?;
                record_batch.insert(r.chain.record_key(r.seq).as_slice(), seq)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Sets a stored batch's status.
    pub fn set_batch_status(&self, batch: &BatchRow) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(BATCHES)?
            .insert(batch.payload.batch_seq, batch.encode().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A stored batch.
    pub fn batch(&self, seq: u64) -> Result<Option<BatchRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        table.get(seq)?.map(|v| BatchRow::decode(v.value())).transpose()
    }

    /// A stored batch's record hashes, in leaf order.
    pub fn batch_hashes(&self, seq: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCH_HASHES)?;
        let Some(v) = table.get(seq)? else {
            return Ok(None);
        };
        let (chunks, rest) = v.value().as_chunks::<HASH>();
        if !rest.is_empty() {
            return Err(StoreError::Corrupt { what: "batch hashes" });
        }
        Ok(Some(chunks.to_vec()))
    }

    /// The batch a record was committed in (`None` while it is pending).
    pub fn record_batch(&self, chain: &ChainKey, seq: u64) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORD_BATCH)?;
        Ok(table.get(chain.record_key(seq).as_slice())?.map(|v| v.value()))
    }

    /// Visits `device`'s stored records in key order (chain key, then seq), strictly after
    /// `after` (stream, seq) when given, reading at most `rows_max` rows in one read
    /// transaction; `visit` returns `false` to stop. Read-only (the record API's listing).
    pub fn scan_device_records(
        &self,
        device: &DeviceId,
        after: Option<(&str, u64)>,
        rows_max: usize,
        mut visit: impl FnMut(RecordRow<'_>) -> bool,
    ) -> Result<(), StoreError> {
        use std::ops::Bound;
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let batches = txn.open_table(RECORD_BATCH)?;
        let start = match after {
            Some((stream, seq)) => ChainKey {
                device: *device,
                stream: stream.into(),
            }
            .record_key(seq),
            None => device.0.to_vec(),
        };
        let lower = match after {
            Some(_) => Bound::Excluded(start.as_slice()),
            None => Bound::Included(start.as_slice()),
        };
        for row in records.range::<&[u8]>((lower, Bound::Unbounded))?.take(rows_max) {
            let (k, v) = row?;
            let key = k.value();
            if !key.starts_with(&device.0) {
                break;
            }
            let corrupt = || StoreError::Corrupt { what: "record" };
            let (chain, seq) = ChainKey::decode(key)?;
            let seq = u64::from_be_bytes(seq.try_into().map_err(|_| corrupt())?);
            let (hash, rest) = v.value().split_first_chunk::<HASH>().ok_or_else(corrupt)?;
            let (&trust, bytes) = rest.split_first().ok_or_else(corrupt)?;
            let row = RecordRow {
                batch: batches.get(key)?.map(|b| b.value()),
                chain,
                seq,
                hash: RecordHash(*hash),
                trust: trust_from_u8(trust).ok_or_else(corrupt)?,
                bytes,
            };
            if !visit(row) {
                break;
            }
        }
        Ok(())
    }
}

/// One stored record as [`Store::scan_device_records`] reads it (bytes borrowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow<'a> {
    pub chain: ChainKey,
    pub seq: u64,
    pub hash: RecordHash,
    pub trust: TrustLevel,
    pub bytes: &'a [u8],
    /// The batch it was cut into (`None`: still pending).
    pub batch: Option<u64>,
}

fn encode_head(seq: u64, hash: RecordHash) -> [u8; 8 + HASH] {
    let mut out = [0; 8 + HASH];
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..].copy_from_slice(&hash.0);
    out
}

fn decode_head(bytes: &[u8]) -> Result<(u64, RecordHash), StoreError> {
    let bytes: &[u8; 8 + HASH] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt { what: "chain head" })?;
    let (seq, hash) = bytes.split_at(8);
    let seq: [u8; 8] = seq.try_into().map_err(|_| StoreError::Corrupt { what: "chain head" })?;
    let hash: [u8; HASH] = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt { what: "chain head" })?;
    Ok((u64::from_be_bytes(seq), RecordHash(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> ChainKey {
        ChainKey {
            device: DeviceId([7; 20]),
            stream: "temperature".into(),
        }
    }

    #[test]
    fn pending_record_round_trips_and_rejects_truncation() {
        let r = PendingRecord {
            chain: chain(),
            seq: 42,
            hash: RecordHash([9; 32]),
            trust: TrustLevel::Attested,
            timestamp_ms: 1_764_000_000_000,
            moves_head: false,
        };
        let mut bytes = Vec::new();
        r.encode_into(&mut bytes);
        assert_eq!(PendingRecord::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(PendingRecord::decode(&bytes[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn batch_status_round_trips() {
        for status in [
            BatchStatus::Pending,
            BatchStatus::Submitted(TxHash([3; 32])),
            BatchStatus::Committed(None),
            BatchStatus::Committed(Some(TxHash([4; 32]))),
        ] {
            let mut bytes = Vec::new();
            status.encode(&mut bytes);
            assert_eq!(BatchStatus::decode(&bytes).unwrap(), (status, &[][..]));
        }
    }

    #[test]
    fn record_keys_order_by_chain_then_seq() {
        let c = chain();
        assert!(c.record_key(2) < c.record_key(10));
        assert!(
            c.record_key(u64::MAX)
                < ChainKey {
                    stream: "uemperature".into(),
                    ..c.clone()
                }
                .record_key(1)
        );
    }
}
