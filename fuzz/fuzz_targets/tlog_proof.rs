//! `cargo fuzz run tlog_proof`: see `chipledger_fuzz::notes::tlog_proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::notes::tlog_proof(data));
