//! chipledger's shared vocabulary: identifiers, keys and signatures, transactions, blocks,
//! genesis, the canonical CBOR codec, RFC 9162 Merkle trees, C2SP checkpoints and signed notes.
//!
//! `no_std` + `alloc`: the device SDK and the browser build use it too. No I/O, no clock.
#![cfg_attr(not(feature = "std"), no_std)]
extern crate alloc;

pub mod access_tx;
pub mod audit;
pub mod block;
pub mod cbor;
pub mod checkpoint;
pub mod command_tx;
pub mod data_tx;
pub mod device_tx;
pub mod firmware_tx;
pub mod genesis;
pub mod keys;
pub mod limits;
pub mod merkle;
pub mod note;
pub mod record;
pub mod record_proof;
pub mod state_proof;
pub mod tlog_proof;
pub mod tx;
pub mod validator_record;
pub mod zk_tx;
