#!/usr/bin/env bash
# Fuzz smoke (issue 8): build every cargo-fuzz target in fuzz/, replay its committed corpus and
# fuzz it for a few seconds; any crash, panic, out-of-memory, leak or timeout fails the run.
# Works on stable Rust (cargo-fuzz with `-s none`; see fuzz/README.md). New inputs go to a
# scratch directory, never to fuzz/corpus/.
#
#   scripts/fuzz-smoke.sh                  every target of the light build, FUZZ_SMOKE_SECONDS (5) each
#   scripts/fuzz-smoke.sh tx record        only these targets
#   FUZZ_SMOKE_FULL=1 scripts/fuzz-smoke.sh  also `mqtt` and `api` (builds the gateway and the node)
#
# The light build leaves out the gateway and node crates (minutes of cold build); their targets
# still replay their corpus on stable Rust in `cargo test --manifest-path fuzz/Cargo.toml
# --no-default-features --features gateway,node` (tests/corpus_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SMOKE_SECONDS:-5}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/chipledger-fuzz-target}
# With `-s none` cargo-fuzz 0.13 passes no nightly-only flag (measured on stable 1.95):
# no nightly toolchain and no RUSTC_BOOTSTRAP needed.
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

cd fuzz
# Same flags for build and run, so `run` reuses the build. 16 codegen units: a faster build
# for somewhat slower fuzzing, right for a smoke run.
flags=(-s none --debug-assertions --codegen-units 16 --no-default-features)
full=${FUZZ_SMOKE_FULL:-0}
if [ "$full" = 1 ]; then
    flags+=(--features libfuzzer,gateway,node)
else
    flags+=(--features libfuzzer)
fi
# Targets that need the gateway or node features (fuzz/Cargo.toml).
heavy=" mqtt api "
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz-smoke: built in $(($(date +%s) - start)) s"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ran=0
for t in "${targets[@]}"; do
    if [ "$full" != 1 ] && [[ "$heavy" == *" $t "* ]]; then
        echo "fuzz-smoke: $t not in this build (FUZZ_SMOKE_FULL=1 builds it)"
        continue
    fi
    mkdir -p "$scratch/$t"
    inputs=("seeds/$t")
    [ -d "corpus/$t" ] && inputs+=("corpus/$t")
    echo "fuzz-smoke: $t (${seconds} s)"
    # -rss_limit_mb / -malloc_limit_mb: a single allocation above 256 MB is a finding
    # (unbounded allocation); -timeout: one input running 10 s is a finding.
    cargo fuzz run "${flags[@]}" "$t" "$scratch/$t" "${inputs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$scratch/$t/crash-" 2>&1 | tail -n 30 \
        || { echo "fuzz-smoke: $t FAILED (inputs in $scratch/$t)"; trap - EXIT; exit 1; }
    ran=$((ran + 1))
done
echo "fuzz-smoke: $ran targets OK in $(($(date +%s) - start)) s"
