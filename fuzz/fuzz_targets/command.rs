//! `cargo fuzz run command`: see `chipledger_fuzz::device::command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::command(data));
