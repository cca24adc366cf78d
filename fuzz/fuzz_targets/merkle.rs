//! `cargo fuzz run merkle`: see `chipledger_fuzz::proofs::merkle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::proofs::merkle(data));
