#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotently) and runs every test:
# unit tests and the end-to-end WebRTC tests (server in-process on loopback,
# GStreamer webrtcbin peers). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Tests that start servers serialise themselves; the media tests want both cores.
exec cargo test --all-targets "$@"
