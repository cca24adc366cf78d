//! `cargo fuzz run mqtt`: see `chipledger_fuzz::mqtt::mqtt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::mqtt::mqtt(data));
