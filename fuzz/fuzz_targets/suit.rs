//! `cargo fuzz run suit`: see `chipledger_fuzz::device::suit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::suit(data));
