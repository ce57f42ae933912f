#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotently) and runs the server with
# the default config: http://127.0.0.1:8080, signaling at ws://127.0.0.1:8080/ws.
# Extra arguments go to `tessera serve`, e.g. scripts/run.sh --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec cargo run --release --bin tessera -- serve "$@"
