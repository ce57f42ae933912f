#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotently) and runs every test:
# unit tests and the end-to-end WebRTC tests (server in-process on loopback,
# GStreamer webrtcbin peers). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets --no-run "$@"
# Tests that start servers serialise themselves; the media tests want both cores.
# The suite runs in about 15 minutes; a test that hangs (a deadlock) fails the
# run after 40 instead of stalling it.
status=0
timeout --kill-after=30s 40m cargo test --workspace --all-targets "$@" || status=$?
if [ "$status" -eq 124 ]; then
  echo "scripts/test.sh: tests still running after 40 minutes; the test named last above hangs" >&2
fi
exit "$status"
