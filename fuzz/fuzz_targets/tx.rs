//! `cargo fuzz run tx`: see `chipledger_fuzz::codec::tx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::codec::tx(data));
