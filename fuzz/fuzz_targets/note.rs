//! `cargo fuzz run note`: see `chipledger_fuzz::notes::note`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chipledger_fuzz::notes::note(data));
