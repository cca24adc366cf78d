//! `cargo fuzz run eat`: see `chipledger_fuzz::device::eat`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::eat(data));
