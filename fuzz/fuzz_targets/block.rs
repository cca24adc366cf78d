//! `cargo fuzz run block`: see `chipledger_fuzz::codec::block`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::codec::block(data));
