//! `cargo fuzz run record_chain`: see `chipledger_fuzz::record::record_chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::record::record_chain(data));
