#!/usr/bin/env bash
# Runs every check and test of chipledger. The README's test command; .ci/run calls it.
# Needs a Rust toolchain (with rustfmt and clippy) and crates.io; installs what the tests need
# beyond that (openapi-spec-validator, schemathesis, mosquitto, nodejs, chromium) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# A build cache outside the clone, reused between runs when present (the run passes without it).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/chipledger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# No incremental state: a one-shot run gains nothing from it, and it doubled the cache's size
# (a CI run once failed with "No space left on device").
export CARGO_INCREMENTAL=0

# The cache is only a cache: when its disk runs short, drop its incremental state (left by
# interactive builds), then, if that is not enough, the whole cache.
prune_below_gib=25
wipe_below_gib=12
free_gib() { df -P --block-size=1G "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
prune_cache() {
  local dir=$1
  [ -d "$dir" ] || return 0
  local free
  free=$(free_gib "$dir")
  [ -n "$free" ] && [ "$free" -lt "$prune_below_gib" ] || return 0
  echo "== only ${free} GiB free on the disk of $dir: pruning the build cache"
  rm -rf "$dir"/debug/incremental "$dir"/release/incremental "$dir"/*/release/incremental
  free=$(free_gib "$dir")
  if [ "$free" -lt "$wipe_below_gib" ]; then
    echo "== still ${free} GiB free: removing the build cache $dir (the run rebuilds what it needs)"
    rm -rf "$dir"
  fi
  echo "== $(free_gib "$(dirname "$dir")") GiB free now"
}
prune_cache "$CARGO_TARGET_DIR"
prune_cache "${FUZZ_TARGET_DIR:-/var/tmp/chipledger-fuzz-target}"

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "== installing $component"
    rustup component add "$component"
  fi
done

step() { echo; echo "== $* ($(date +%T))"; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "types and device build as no_std"
cargo check -p chipledger-types --no-default-features --locked
cargo build -p chipledger-device --no-default-features --locked

step "OpenAPI document validates (openapi-spec-validator)"
if ! python3 -c "import openapi_spec_validator" 2>/dev/null; then
  command -v pip3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-pip; }
  pip3 install --quiet openapi-spec-validator || pip3 install --quiet --break-system-packages openapi-spec-validator
fi
spec="$(mktemp --suffix=.json)"
cargo run --quiet --locked -p chipledger -- openapi > "$spec"
python3 -m openapi_spec_validator "$spec"
rm -f "$spec"

step "test packages (mosquitto: the MQTT tests run the gateway against it too)"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  apt-get update -qq && apt-get install -y -qq mosquitto
fi
# nodejs: the explorer's verify.js known-answer tests (the machine image ships Node.js 20).
if ! command -v node >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs
fi
# chromium + chromium-driver: the explorer's browser tests (crates/cli/tests/explorer.rs).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver
fi
# schemathesis: property-based tests of the HTTP API against /openapi.json (crates/cli/tests/schemathesis.rs).
if ! command -v schemathesis >/dev/null; then
  pip3 install --quiet 'schemathesis==4.32.5' || pip3 install --quiet --break-system-packages 'schemathesis==4.32.5'
  if command -v pyenv >/dev/null; then pyenv rehash || true; fi
fi
if ! command -v schemathesis >/dev/null; then
  SCHEMATHESIS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis"
  export SCHEMATHESIS
fi
export PATH="$PATH:/usr/sbin"

# The process tests listen on fixed ports 17070–38272; keep the kernel's ephemeral ports (for
# outgoing connections) above them so none is ever taken by a client socket (best effort: a
# container may not allow it).
if [ -w /proc/sys/net/ipv4/ip_local_port_range ]; then
  echo "40000 60999" > /proc/sys/net/ipv4/ip_local_port_range || true
fi

step "tests"
cargo test --workspace --locked

step "fuzz targets: seeds and the committed corpus replayed through every target (stable Rust)"
cargo test --manifest-path fuzz/Cargo.toml --locked --no-default-features --features gateway,node

step "fuzz smoke: each target under libFuzzer for a few seconds (cargo-fuzz on stable, fuzz/README.md)"
scripts/fuzz-smoke.sh
