#!/usr/bin/env bash
# Code size of the device-side update verifier, no_std, x86_64, opt-level "s", LTO, panic=abort.
# Prints the .text size of a baseline cdylib (allocator + panic handler only) and of builds that
# add the verifier, and the largest symbols of the full build (nm --size-sort).
set -euo pipefail
cd "$(dirname "$0")"
cp ../../../Cargo.lock . # same dependency versions as the workspace
trap 'rm -f Cargo.lock' EXIT
target=${CARGO_TARGET_DIR:-/var/tmp/chipledger-target}/size-probe
text() { size -A "$1" | awk '$1 == ".text" { print $2 }'; }
for features in "" verify "verify,validator-update"; do
    cargo build --release --quiet --target-dir "$target" --features "$features"
    so="$target/release/libchipledger_device_size_probe.so"
    printf '%-28s .text %8d B   file %8d B\n' "${features:-baseline}" "$(text "$so")" "$(stat -c %s "$so")"
done
so="$target/release/libchipledger_device_size_probe.so"
echo "code by crate (sum of nm symbol sizes; generic code is counted where it was instantiated):"
nm --size-sort --radix=d -C "$so" | awk '$2 ~ /^[tT]$/ {
    name = $0; sub(/^[0-9]+ [tT] /, "", name); gsub(/^([<&( ]|mut )+/, "", name)
    split(name, parts, "::"); crate = parts[1]; if (crate == name) crate = "(other)"
    sum[crate] += $1 } END { for (c in sum) printf "%8d  %s\n", sum[c], c }' | sort -rn | head -20
echo "largest symbols (bytes):"
nm --size-sort --radix=d -C "$so" | awk '$2 ~ /^[tT]$/' | tail -12
