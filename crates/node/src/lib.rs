//! A chipledger validator: the consensus adapter, the executor (speculative execution,
//! finalization, checkpoint cosigning), mempool, redb storage, HTTP API and metrics.
#![forbid(unsafe_code)]

pub mod api;
pub mod api_access;
pub mod api_audit;
pub mod api_command;
pub mod api_data;
pub mod api_firmware;
pub mod api_zk;
pub mod blob_store;
pub mod checkpoints;
pub mod config;
pub mod consensus;
pub mod db;
pub mod executor;
pub mod explorer;
pub mod firmware_bundle;
pub mod firmware_index;
pub mod fleet_index;
pub mod http_guard;
pub mod mempool;
pub mod metrics;
pub mod revocations;
pub mod run;
pub mod test_hooks;
