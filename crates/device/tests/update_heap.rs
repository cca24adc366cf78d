//! Peak heap of one update verification, measured with a counting global allocator
//! (`peakmem-alloc`: the peak of bytes allocated and not yet freed since a reset). One test per
//! binary, so no other test thread allocates while it measures.
//!
//! Run `cargo test -p chipledger-device --test update_heap -- --nocapture` to print the figures
//! quoted in the crate README.

mod update_fixture;

use std::alloc::System;

use chipledger_device::update::{UpdateBundle, verify_update};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use update_fixture::*;

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap a device must have free for one verification (decode + verify), with headroom.
const HEAP_BUDGET_BYTES: usize = 64 * 1024;

#[test]
fn one_verification_fits_the_heap_budget() {
    let w = World::new();
    let bytes = w.bundle().to_bytes();
    let (trust, img) = (w.trust(), image());

    GLOBAL.reset_peak_memory();
    let bundle = UpdateBundle::from_bytes(&bytes).expect("decodes");
    let decoded_peak = GLOBAL.get_peak_memory();
    let verified = verify_update(&bundle, &img, &trust);
    let total_peak = GLOBAL.get_peak_memory();
    drop(bundle);
    assert!(verified.is_ok(), "{verified:?}");

    GLOBAL.reset_peak_memory();
    let bundle = UpdateBundle::from_bytes(&bytes).expect("decodes");
    GLOBAL.reset_peak_memory();
    let verified = verify_update(&bundle, &img, &trust);
    let verify_peak = GLOBAL.get_peak_memory();
    assert!(verified.is_ok());

    println!(
        "bundle {} B; peak heap: decode {decoded_peak} B, decode + verify {total_peak} B, verify alone {verify_peak} B",
        bytes.len()
    );
    assert!(total_peak <= HEAP_BUDGET_BYTES, "peak heap {total_peak} B over budget");
    // The decoded bundle holds at least its envelope and checkpoint: the counter sees them.
    assert!(decoded_peak >= bundle.envelope.len() + bundle.checkpoint.len());
}
