//! A `no_std` cdylib exporting the device-side update verifier, for a code-size measurement.
//! Linked with LTO and `--gc-sections`, so only code reachable from the exported functions
//! remains; `measure.sh` compares its `.text` with a baseline build without the verifier.
#![no_std]
extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

const ARENA_BYTES: usize = 64 * 1024;

/// A bump allocator over a static arena (what a small device might use); never frees.
struct Bump {
    arena: UnsafeCell<[u8; ARENA_BYTES]>,
    next: AtomicUsize,
}

unsafe impl Sync for Bump {}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = (self.next.load(Ordering::Relaxed) + layout.align() - 1) & !(layout.align() - 1);
        let end = start + layout.size();
        if end > ARENA_BYTES {
            return core::ptr::null_mut();
        }
        self.next.store(end, Ordering::Relaxed);
        unsafe { (self.arena.get() as *mut u8).add(start) }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    arena: UnsafeCell::new([0; ARENA_BYTES]),
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Baseline: one allocation, so the allocator and panic paths are in both builds.
#[unsafe(no_mangle)]
pub extern "C" fn probe_alloc(n: usize) -> usize {
    alloc::vec![0u8; n].len()
}

/// Decode a bundle and verify it: what a device runs before installing.
#[cfg(feature = "verify")]
#[unsafe(no_mangle)]
#[allow(improper_ctypes_definitions)]
pub extern "C" fn probe_verify_update(
    bundle: &[u8],
    image: &chipledger_device::update::ImageDigest,
    trust: &chipledger_device::update::UpdateTrust,
) -> bool {
    use chipledger_device::update::{UpdateBundle, verify_update};
    UpdateBundle::from_bytes(bundle)
        .and_then(|b| verify_update(&b, image, trust))
        .is_ok()
}

/// Decode and apply a validator-set change.
#[cfg(feature = "validator-update")]
#[unsafe(no_mangle)]
#[allow(improper_ctypes_definitions)]
pub extern "C" fn probe_validator_update(proof: &[u8], trust: &mut chipledger_device::update::UpdateTrust) -> bool {
    use chipledger_device::update::{ValidatorSetProof, apply_validator_update};
    ValidatorSetProof::from_bytes(proof)
        .and_then(|p| apply_validator_update(trust, &p))
        .is_ok()
}
