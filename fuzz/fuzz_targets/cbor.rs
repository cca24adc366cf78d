//! `cargo fuzz run cbor`: see `chipledger_fuzz::codec::cbor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::codec::cbor(data));
