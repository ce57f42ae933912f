#!/usr/bin/env bash
# Renders every built-in layout at 1, 2, 4, 9 and 25 participants into
# docs/layouts/ (the pictures in docs/layouts.md). Participant 1 is the
# teacher and the last one the active speaker; in `screen`, participant 0
# is the shared screen.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --quiet --bin tessera
mkdir -p docs/layouts
for layout in grid speaker presenter screen pip; do
  for n in 1 2 4 9 25; do
    teacher=$(( n > 1 ? 1 : 0 ))
    screen=()
    if [ "$layout" = screen ]; then screen=(--screen 0); fi
    ./target/debug/tessera layouts render "$layout" --participants "$n" \
      --teacher "$teacher" --speaker $(( n - 1 )) "${screen[@]}" --width 640 --height 360 \
      --out "docs/layouts/$layout-$n.png" >/dev/null
  done
done
echo "rendered $(ls docs/layouts/*.png | wc -l) pictures into docs/layouts/"
