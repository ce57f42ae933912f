#!/usr/bin/env bash
# Fuzzes the signaling decoder and the offer (SDP) checks with libFuzzer
# through cargo-fuzz, each for SECONDS (default 60), starting from and adding
# to the corpus kept in fuzz/corpus/. A crash leaves its input in
# fuzz/artifacts/ and fails the run.
#
# cargo-fuzz needs compiler flags that only nightly accepts; this machine
# has one stable toolchain, so RUSTC_BOOTSTRAP lets it take them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# GStreamer keeps its registry for the life of the process; that is not a leak.
export ASAN_OPTIONS=detect_leaks=0
for target in signaling offer; do
  echo "fuzzing $target for ${seconds} s"
  # Progress lines are dropped; a failure fails the pipeline (pipefail).
  cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | { grep -vE '^#[0-9]+' || true; } | tail -n 20
done
