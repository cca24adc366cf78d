//! `cargo fuzz run record`: see `chipledger_fuzz::record::record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::record::record(data));
