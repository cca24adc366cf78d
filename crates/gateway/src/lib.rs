//! chipledger gateway: receives signed, encrypted device records, verifies and persists them
//! durably before acknowledging, detects hash-chain anomalies, and batches record hashes into
//! `CommitBatch` ledger payloads. It never holds plaintext or data keys: record payloads are
//! COSE_Encrypt0 bytes stored exactly as received.

pub mod batch;
pub mod error;
pub mod ingest;
pub mod mqtt;
pub mod store;
pub mod topics;

pub use batch::{SubmitReport, Submitter, TxStatus};
pub use error::{BatchError, IngestError, StoreError, SubmitError};
pub use ingest::{Accepted, DeviceDirectory, DeviceEntry, DeviceStatus, Gateway, GatewayConfig, MemoryDirectory};
