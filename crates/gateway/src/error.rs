//! Typed errors of the gateway pipeline: storage, ingestion and batch submission.

use chipledger_types::cbor::DecodeError;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::record::{ChainAnomaly, RecordError};

/// The record store failed (I/O, redb) or holds a value this version cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record store: {0}")]
    Redb(#[from] redb::Error),
    #[error("record store holds a malformed {what}")]
    Corrupt { what: &'static str },
    #[error("record store holds an undecodable {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    /// The write of the group this record belonged to failed (`Gateway::ingest_many`; the
    /// group's first affected record carries the cause itself).
    #[error("record store: the group write failed: {0}")]
    GroupWrite(String),
}

/// Converts each concrete redb error into [`StoreError::Redb`].
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why a record was not acknowledged. Only [`IngestError::Store`] is the gateway's fault (the
/// device should retry); every other variant is final for these bytes.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("record is {len} bytes; the gateway accepts at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("record refused: {0}")]
    Record(#[from] RecordError),
    #[error("device {} is revoked", hex_id(.0))]
    Revoked(DeviceId),
    #[error("device {} is unknown and announced no self-reported key", hex_id(.0))]
    UnknownDevice(DeviceId),
    #[error("record does not verify under any key known for device {}", hex_id(.0))]
    NoMatchingKey(DeviceId),
    /// A fork or a replay: the record is not linked into the chain (a fork is kept as evidence).
    #[error("chain anomaly: {0}")]
    Chain(ChainAnomaly),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hex_id(id: &DeviceId) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why submitting a batch failed (what a [`crate::batch::Submitter`] reports).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ledger already holds this gateway's batch with this seq (`batch_replayed`).
    #[error("ledger refused the batch as replayed (batch_replayed)")]
    BatchReplayed,
    /// The ledger refused the batch for another reason (error code and message).
    #[error("ledger refused the batch: {0}")]
    Rejected(String),
    /// The node could not be reached or answered nonsense; retry later.
    #[error("submission transport: {0}")]
    Transport(String),
}

/// Why a batch operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The ledger holds a different root under this batch seq: the gateway's store and the
    /// ledger disagree (e.g. a store restored from an old backup). Needs an operator.
    #[error("ledger holds batch {seq} with another root than the stored one")]
    RootMismatch { seq: u64 },
}
