//! `cargo fuzz run api`: see `chipledger_fuzz::api::api`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::api::api(data));
