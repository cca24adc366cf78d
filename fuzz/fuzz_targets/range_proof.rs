//! `cargo fuzz run range_proof`: see `chipledger_fuzz::zk::range_proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::zk::range_proof(data));
