//! Batching: cut the pending records into `CommitBatch` payloads and see each one through to
//! the ledger exactly once.
//!
//! A batch is cut when it reaches `max_batch_records` records, when its oldest record has
//! waited `max_batch_age`, or when one more chain would exceed `max_batch_heads`. Its root is
//! [`batch_root`] over the record hashes in arrival order; each chain's head is its last
//! head-moving record in the batch (late gap-filling records are committed in the root but move
//! no head), with the lowest trust level of those records. Cutting is one store transaction:
//! the batch is written and its records leave the pending list together.
//!
//! Submission walks the open batches in seq order through a [`Submitter`]: a `Pending` batch is
//! submitted (its seq was fixed at the cut, so a resubmission after a crash reuses it); a
//! `Submitted` one is polled; a transaction the node no longer knows is resubmitted. The ledger
//! refuses a number it already holds as `batch_replayed`: the gateway then compares the
//! ledger's root with the stored one and marks the batch committed only if they match.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use chipledger_types::data_tx::{BatchHead, CommitBatch, batch_root};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::merkle::Hash;
use chipledger_types::tx::TxHash;

use crate::error::{BatchError, StoreError, SubmitError};
use crate::ingest::Gateway;
use crate::store::{BatchRow, BatchStatus, PendingRecord};

/// What the ledger says about a submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// In the mempool or a block not yet final.
    Pending,
    /// In a finalized block.
    Final,
    /// The node does not know it (dropped, or refused after acceptance): resubmit.
    Unknown,
}

/// How batches reach the ledger (the CLI plugs in its signed-transaction client).
pub trait Submitter {
    /// Signs and submits a `CommitBatch`; returns the transaction hash.
    fn submit(&mut self, batch: &CommitBatch) -> Result<TxHash, SubmitError>;
    /// Where a submitted transaction is.
    fn status(&mut self, tx: &TxHash) -> Result<TxStatus, SubmitError>;
    /// The root the ledger holds for `gateway`'s batch `batch_seq`, if any.
    fn committed_root(&mut self, gateway: &str, batch_seq: u64) -> Result<Option<Hash>, SubmitError>;
}

/// What one [`Gateway::submit_batches`] pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitReport {
    /// Batch seqs submitted (or resubmitted) in this pass.
    pub submitted: Vec<u64>,
    /// Batch seqs newly marked committed in this pass (each seq appears once, ever).
    pub committed: Vec<u64>,
}

impl Gateway {
    /// True when the pending records should be cut into a batch now.
    pub fn batch_due(&self, now: Instant) -> bool {
        let full = self.pending.len() >= self.config.max_batch_records;
        let old = self
            .oldest_pending
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.max_batch_age);
        !self.pending.is_empty() && (full || old)
    }

    /// Cuts the next batch from the pending records (oldest first, within the record and head
    /// limits) and stores it as `Pending`; `None` when nothing is pending.
    pub fn cut_batch(&mut self) -> Result<Option<CommitBatch>, StoreError> {
        let take = self.batch_prefix();
        if take == 0 {
            return Ok(None);
        }
        let records = &self.pending[..take];
        let hashes: Vec<Hash> = records.iter().map(|(_, r)| r.hash.0).collect();
        let payload = build_payload(&self.config.name, self.next_batch_seq, &hashes, records);
        let row = BatchRow {
            payload: payload.clone(),
            status: BatchStatus::Pending,
        };
        self.store.cut_batch(&row, &hashes, records)?;
        tracing::info!(batch = payload.batch_seq, records = take, "batch cut");
        self.pending.drain(..take);
        self.oldest_pending = (!self.pending.is_empty()).then(|| self.now());
        self.open_batches.insert(payload.batch_seq, row);
        self.next_batch_seq += 1;
        Ok(Some(payload))
    }

    /// How many pending records the next batch takes.
    fn batch_prefix(&self) -> usize {
        let mut chains = std::collections::BTreeSet::new();
        let mut take = 0;
        for (_, r) in self.pending.iter().take(self.config.max_batch_records) {
            if r.moves_head && !chains.contains(&r.chain) {
                if chains.len() == self.config.max_batch_heads {
                    break;
                }
                chains.insert(r.chain.clone());
            }
            take += 1;
        }
        take
    }

    /// Cut batches not yet known committed, by seq.
    pub fn open_batches(&self) -> impl Iterator<Item = (&u64, &BatchRow)> {
        self.open_batches.iter()
    }

    /// A batch's record hashes in leaf order (for inclusion proofs).
    pub fn batch_record_hashes(&self, seq: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        self.store.batch_hashes(seq)
    }

    /// One pass over the open batches, in seq order. Stops at the first submission error (later
    /// batches would only be refused as a seq gap) and returns it.
    pub fn submit_batches<S: Submitter + ?Sized>(&mut self, submitter: &mut S) -> Result<SubmitReport, BatchError> {
        submit_pass(self, submitter)
    }

    /// Records a submission: the batch is `Submitted` in `tx` (durably).
    fn mark_submitted(&mut self, mut row: BatchRow, tx: TxHash, report: &mut SubmitReport) -> Result<(), StoreError> {
        let seq = row.payload.batch_seq;
        row.status = BatchStatus::Submitted(tx);
        self.store.set_batch_status(&row)?;
        self.open_batches.insert(seq, row);
        report.submitted.push(seq);
        Ok(())
    }

    /// Marks an open batch committed (durably) and closes it; a closed batch is never marked
    /// again.
    fn mark_committed(&mut self, seq: u64, tx: Option<TxHash>, report: &mut SubmitReport) -> Result<(), StoreError> {
        let Some(mut row) = self.open_batches.get(&seq).cloned() else {
            return Ok(());
        };
        row.status = BatchStatus::Committed(tx);
        self.store.set_batch_status(&row)?;
        self.open_batches.remove(&seq);
        tracing::info!(batch = seq, "batch committed");
        report.committed.push(seq);
        Ok(())
    }
}

/// [`Gateway::submit_batches`] for a gateway shared behind a mutex (ingest on one thread, the
/// ledger loop on another): the lock is taken only to read and update the batches, never while
/// the submitter waits on the ledger, so ingestion goes on meanwhile. Only the ledger loop may
/// submit. A poisoned lock is taken over (the batch state is written through to the store
/// before it changes in memory).
pub fn submit_batches_shared<S: Submitter + ?Sized>(
    gateway: &Mutex<Gateway>,
    submitter: &mut S,
) -> Result<SubmitReport, BatchError> {
    submit_pass(gateway, submitter)
}

/// How a submission pass reaches the gateway: directly, or through a briefly held lock.
trait Access {
    fn with<R>(&mut self, f: impl FnOnce(&mut Gateway) -> R) -> R;
}

impl Access for &mut Gateway {
    fn with<R>(&mut self, f: impl FnOnce(&mut Gateway) -> R) -> R {
        f(self)
    }
}

impl Access for &Mutex<Gateway> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Gateway) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The pass itself: walks the open batches in seq order; the submitter is called outside
/// [`Access::with`].
fn submit_pass<A: Access, S: Submitter + ?Sized>(
    mut gateway: A,
    submitter: &mut S,
) -> Result<SubmitReport, BatchError> {
    let mut report = SubmitReport::default();
    let (name, rows): (String, Vec<BatchRow>) =
        gateway.with(|g| (g.config.name.clone(), g.open_batches.values().cloned().collect()));
    for row in rows {
        let seq = row.payload.batch_seq;
        let resubmit = match row.status {
            BatchStatus::Pending => true,
            BatchStatus::Submitted(tx) => match submitter.status(&tx)? {
                TxStatus::Final => {
                    gateway.with(|g| g.mark_committed(seq, Some(tx), &mut report))?;
                    false
                }
                TxStatus::Pending => false,
                TxStatus::Unknown => true,
            },
            BatchStatus::Committed(_) => false,
        };
        if !resubmit {
            continue;
        }
        match submitter.submit(&row.payload) {
            Ok(tx) => gateway.with(|g| g.mark_submitted(row, tx, &mut report))?,
            Err(SubmitError::BatchReplayed) => {
                let ledger_root = submitter.committed_root(&name, seq)?;
                if ledger_root != Some(row.payload.root) {
                    return Err(BatchError::RootMismatch { seq });
                }
                gateway.with(|g| g.mark_committed(seq, None, &mut report))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// The `CommitBatch` of `records` (non-empty, within the limits).
fn build_payload(gateway: &str, batch_seq: u64, hashes: &[Hash], records: &[(u64, PendingRecord)]) -> CommitBatch {
    let timestamps = records.iter().map(|(_, r)| r.timestamp_ms);
    CommitBatch {
        gateway: gateway.into(),
        batch_seq,
        root: batch_root(hashes),
        record_count: u32::try_from(records.len()).unwrap_or(u32::MAX),
        first_timestamp_ms: timestamps.clone().min().unwrap_or(0),
        last_timestamp_ms: timestamps.max().unwrap_or(0),
        heads: heads(records),
    }
}

/// Each chain's last head-moving record, sorted by (device, stream), with its record count
/// and lowest trust level.
fn heads(records: &[(u64, PendingRecord)]) -> Vec<BatchHead> {
    let mut heads: BTreeMap<(DeviceId, &str), BatchHead> = BTreeMap::new();
    for (_, r) in records.iter().filter(|(_, r)| r.moves_head) {
        let head = heads
            .entry((r.chain.device, r.chain.stream.as_str()))
            .or_insert_with(|| BatchHead {
                device: r.chain.device,
                stream: r.chain.stream.clone(),
                seq: r.seq,
                hash: r.hash.0,
                records: 0,
                trust: r.trust,
            });
        if r.seq >= head.seq {
            head.seq = r.seq;
            head.hash = r.hash.0;
        }
        head.records += 1;
        head.trust = head.trust.min(r.trust);
    }
    heads.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_types::data_tx::TrustLevel;
    use chipledger_types::record::RecordHash;

    use crate::store::ChainKey;

    fn rec(device: u8, stream: &str, seq: u64, trust: TrustLevel, moves_head: bool) -> (u64, PendingRecord) {
        let r = PendingRecord {
            chain: ChainKey {
                device: DeviceId([device; 20]),
                stream: stream.into(),
            },
            seq,
            hash: RecordHash([seq as u8 ^ device; 32]),
            trust,
            timestamp_ms: 1_000 + seq,
            moves_head,
        };
        (seq, r)
    }

    /// Heads: sorted by (device, stream), last head-moving seq, counts exclude late records,
    /// trust is the minimum.
    #[test]
    fn heads_follow_the_ledger_rules() {
        use TrustLevel::*;
        let records = [
            rec(2, "a", 5, Attested, true),
            rec(1, "b", 1, Registered, true),
            rec(1, "a", 1, Attested, true),
            rec(2, "a", 6, Registered, true),
            rec(2, "a", 3, SelfReported, false),
            rec(1, "a", 2, Attested, true),
        ];
        let got: Vec<_> = heads(&records)
            .into_iter()
            .map(|h| (h.device.0[0], h.stream, h.seq, h.records, h.trust))
            .collect();
        assert_eq!(
            got,
            [
                (1, "a".to_string(), 2, 2, Attested),
                (1, "b".to_string(), 1, 1, Registered),
                (2, "a".to_string(), 6, 2, Registered),
            ]
        );
        let payload = build_payload("gw", 7, &[[0; 32]; 6], &records);
        assert_eq!(
            (
                payload.record_count,
                payload.first_timestamp_ms,
                payload.last_timestamp_ms
            ),
            (6, 1_001, 1_006)
        );
    }
}
