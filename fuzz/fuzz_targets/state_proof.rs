//! `cargo fuzz run state_proof`: see `chipledger_fuzz::proofs::state_proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::proofs::state_proof(data));
