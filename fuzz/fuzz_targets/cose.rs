//! `cargo fuzz run cose`: see `chipledger_fuzz::device::cose`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::cose(data));
