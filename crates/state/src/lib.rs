//! The deterministic state machine: `apply(state, tx) -> Result<Events, TxError>`.
//!
//! No I/O, no clock, no randomness, no hash-map iteration: the same ordered transactions give
//! byte-identical state and state root on every validator. Time and height come from the block.
#![forbid(unsafe_code)]

pub mod access;
pub mod apply;
pub mod audit;
pub mod command;
pub mod data;
pub mod device;
pub mod error;
pub mod firmware;
pub mod model;
pub mod smt;
pub mod store;
pub mod zk;

pub use apply::{BlockContext, Event, SignatureCheck, VerifyAll, apply_tx, genesis_writes};
pub use error::TxError;
