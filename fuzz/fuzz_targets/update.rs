//! `cargo fuzz run update`: see `chipledger_fuzz::device::update`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::update(data));
