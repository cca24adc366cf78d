//! chipledger gateway: receives signed, encrypted device records, verifies and persists them
//! durably before acknowledging, detects hash-chain anomalies, and batches record hashes into
//! `CommitBatch` ledger payloads. It never holds plaintext or data keys: record payloads are
//! COSE_Encrypt0 bytes stored exactly as received.

pub mod batch;
pub mod error;
pub mod group;
pub mod ingest;
pub mod mqtt;
pub mod proof;
pub mod reject;
pub mod store;
pub mod topics;
pub mod verify;

pub use batch::{SubmitReport, Submitter, TxStatus, submit_batches_shared};
pub use error::{BatchError, IngestError, StoreError, SubmitError};
pub use group::{Verified, verify_many};
pub use ingest::{
    Accepted, Clock, DeviceDirectory, DeviceEntry, DeviceStatus, Gateway, GatewayConfig, MemoryDirectory,
};
pub use reject::{Rejection, RejectionOutcome, RejectionStats};
#[cfg(test)]
mod test_support;
