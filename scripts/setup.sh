#!/usr/bin/env bash
# Installs what Tessera needs on Debian 12, idempotently.
#   scripts/setup.sh            build + run + test packages
#   scripts/setup.sh run        only the runtime packages
# Reads scripts/packages.txt; skips apt entirely when everything is present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want="${1:-all}"

pkgs=()
while read -r kind name _; do
  case "$kind" in ''|'#'*) continue ;; esac
  if [ "$want" = all ] || [ "$want" = "$kind" ]; then pkgs+=("$name"); fi
done < "$here/packages.txt"

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#pkgs[@]} packages present"
fi

if [ "$want" = all ] || [ "$want" = test ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
    exit 1
  fi
  # Firefox's WebDriver server is not packaged in Debian 12; it builds from crates.io.
  if ! command -v geckodriver >/dev/null 2>&1; then
    echo "setup: installing geckodriver (cargo install, a few minutes)"
    cargo install --locked geckodriver
  fi
fi
