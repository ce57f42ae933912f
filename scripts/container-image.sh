#!/usr/bin/env bash
# Builds Tessera's container image with podman from the repository's
# Dockerfile, without an image registry: the two base images the Dockerfile
# names (BUILD_IMAGE, RUNTIME_IMAGE) are made here from Debian's package
# mirror with mmdebstrap, the build one with this machine's Rust toolchain.
#
#   scripts/container-image.sh [tag]      default tag: localhost/tessera:ci
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root, podman, runc and mmdebstrap (scripts/packages.txt, `test`).
# Prints the tag on the last line of its output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="${1:-localhost/tessera:ci}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
runtime_base=localhost/tessera-base:bookworm
build_base=localhost/tessera-build-base:bookworm

# podman's default ulimits cannot be applied inside some sandboxes; Tessera
# sets none of its own.
source scripts/containers-conf.sh

if ! podman image exists "$runtime_base" || ! podman image exists "$build_base"; then
  work="$(mktemp -d /tmp/tessera-rootfs.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  echo "container-image: making a Debian 12 base from $mirror"
  mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs" "$mirror"
  tar -C "$work/rootfs" -c . | podman import --quiet - "$runtime_base" >/dev/null
  # The build base: the same Debian plus the Rust toolchain that builds the
  # project here (its documentation and sources left out).
  sysroot="$(rustc --print sysroot)"
  mkdir -p "$work/rootfs/usr/local/rust"
  tar -C "$sysroot" --exclude=./share/doc --exclude=./lib/rustlib/src \
    --exclude=./lib/rustlib/rustc-src -c . | tar -C "$work/rootfs/usr/local/rust" -x
  tar -C "$work/rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$build_base" >/dev/null
fi

# The build downloads crates and Debian packages: it uses the host's
# network, and the host's crate cache when there is one.
cache=()
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
if [ -d "$registry" ]; then cache=(--volume "$registry:/root/.cargo/registry"); fi
echo "container-image: building $tag from Dockerfile"
podman build --quiet --network=host "${cache[@]}" \
  --build-arg BUILD_IMAGE="$build_base" \
  --build-arg RUNTIME_IMAGE="$runtime_base" \
  --tag "$tag" . >/dev/null
echo "$tag"
