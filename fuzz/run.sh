#!/usr/bin/env bash
# Runs each fuzz target (or the TARGETs named) for SECONDS (default 300),
# seeded from the fixtures and from crafted hostile files (inline buckets
# nested thousands deep, elements sharing one span: tests/it/hostile.rs writes
# them to target/fuzz-seeds). Inputs may grow to 2 MiB (-max_len), so the
# fuzzer explores files as large as the seeds and larger.
#   bash fuzz/run.sh [SECONDS [TARGET...]]
# CI runs every target as a 30 s smoke (.ci/run). A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run: turn it into a test under tests/.
# Needs cargo-fuzz (cargo install cargo-fuzz --locked; .ci/setup does). The
# machine's toolchain is stable; RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=("$@")
# Only cargo-fuzz gets RUSTC_BOOTSTRAP: cargo counts it in the fingerprint, so
# setting it for the main crate's builds would rebuild target/ from scratch.
fuzz() { RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-fuzz/target}" cargo fuzz "$@"; }
# 16 codegen units (cargo-fuzz's default is 1): the crate builds on every core
# in a fraction of the time, for slightly fewer runs a second.
cgu=(--codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
# Every target fuzz/Cargo.toml declares, unless some are named.
named=${#targets[@]}
[ "$named" -gt 0 ] || mapfile -t targets < <(fuzz list)

# All targets in one build (their links run in parallel) when none is named;
# `fuzz run` below then finds them built.
[ "$named" -gt 0 ] || fuzz build "${cgu[@]}"

# The crafted seeds, and the debug binary that writes key indexes.
cargo test --quiet --test it hostile::fuzz_seeds >/dev/null
cargo build --quiet

for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  for f in fixtures/*.db; do
    cp "$f" "$corpus/$(basename "$f")"
    # The same file without its trailer, and only its first pages: smaller
    # seeds let the fuzzer reach deep structure quickly.
    head -c $(( $(stat -c %s "$f") - 32 )) "$f" > "$corpus/$(basename "$f").nosha"
    head -c 32768 "$f" > "$corpus/$(basename "$f").head"
  done
  cp target/fuzz-seeds/*.db "$corpus/"
  # Hand-made seeds of a target's own (hostile value shapes: fuzz/seeds/TARGET/).
  if [ -d "fuzz/seeds/$target" ]; then
    cp fuzz/seeds/"$target"/* "$corpus/"
  fi
  if [ "$target" = key_index ]; then
    # Indexes of the fixtures, as `etcdsnap index` writes them.
    for f in fixtures/*.db; do
      "${CARGO_TARGET_DIR:-target}"/debug/etcdsnap index "$f" -o "$corpus/$(basename "$f").etcdsnap-index" >/dev/null
    done
  fi
  if [ "$target" = objects ] && [ -d fixtures/k8s-api-testdata/HEAD ]; then
    cp fixtures/k8s-api-testdata/HEAD/core.v1.*.pb "$corpus/" 2>/dev/null || true
  fi
  fuzz run "${cgu[@]}" "$target" "$corpus" -- -max_total_time="$secs" -max_len=2097152 -timeout=10 -rss_limit_mb=2048 2>&1 \
    | tee "fuzz/last-$target.log" | grep -E "^(#[0-9]+.*(DONE|pulse)|Done|==)" || true
  grep -E "^Done [0-9]+ runs" "fuzz/last-$target.log" || {
    echo "fuzz $target did not finish cleanly: see fuzz/last-$target.log and fuzz/artifacts/$target/" >&2
    exit 1
  }
done
