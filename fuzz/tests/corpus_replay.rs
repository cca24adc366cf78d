//! Replays the seeds (`seeds/<target>/`) and the committed, minimized corpus
//! (`corpus/<target>/`) through every target's body on stable Rust, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml --no-default-features --features gateway,node`.
//! An input that panics is named in the failure.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use chipledger_fuzz::{TARGETS, Target};

/// Runs every file of `dir` (if it exists) through `target`; returns (inputs, inputs that panic).
fn replay(target: &Target, dir: &Path) -> (usize, Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, Vec::new());
    };
    let mut failures = Vec::new();
    let mut inputs = 0;
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&data))).is_err() {
            failures.push(path.display().to_string());
        }
        inputs += 1;
    }
    (inputs, failures)
}

#[test]
fn every_target_replays_its_seeds_and_corpus_without_a_finding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for target in TARGETS {
        let (seeds, mut failed) = replay(target, &root.join("seeds").join(target.name));
        assert!(seeds > 0, "{}: no seeds (cargo run --example seeds)", target.name);
        failures.append(&mut failed);
        let (_, mut failed) = replay(target, &root.join("corpus").join(target.name));
        failures.append(&mut failed);
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}
