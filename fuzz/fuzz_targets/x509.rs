//! `cargo fuzz run x509`: see `chipledger_fuzz::device::x509`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::device::x509(data));
