//! A chipledger validator: the consensus adapter, the executor (speculative execution,
//! finalization, checkpoint cosigning), mempool, redb storage, HTTP API and metrics.
#![forbid(unsafe_code)]

pub mod api;
pub mod checkpoints;
pub mod config;
pub mod consensus;
pub mod db;
pub mod executor;
pub mod mempool;
pub mod metrics;
pub mod revocations;
pub mod run;
