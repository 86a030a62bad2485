#!/usr/bin/env bash
# Two hookgate binaries against nginx in one run (A/B of a change):
# alternates A, B, A, B... for ROUNDS rounds, each a one-round bench/run.sh
# with that binary copied to target/release/hookgate, and prints each
# round's table rows prefixed with the binary's label.
#
#   cargo build --release && cp target/release/hookgate /tmp/hg-b
#   git stash; cargo build --release && cp target/release/hookgate /tmp/hg-a; git stash pop
#   bench/ab.sh /tmp/hg-a /tmp/hg-b
#   SCENARIOS="2 4" ROUNDS=3 DURATION=10s bench/ab.sh /tmp/hg-a /tmp/hg-b
#
# Leaves B in target/release/hookgate. Outputs under WORK (default a new
# /tmp directory): ab-<label>-<round>/ as bench/run.sh writes them.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-$(mktemp -d /tmp/hookgate-ab.XXXXXX)}
export SCENARIOS=${SCENARIOS:-"1 2 4"} DURATION=${DURATION:-8s}
mkdir -p "$ROOT/target/release" "$WORK"
for r in $(seq 1 "$ROUNDS"); do
  for label in A B; do
    bin=$A; [ "$label" = B ] && bin=$B
    cp "$bin" "$ROOT/target/release/hookgate"
    out="$WORK/ab-$label-$r"
    NO_BUILD=1 ROUNDS=1 WORK="$out" "$ROOT/bench/run.sh" > "$out.log" 2>&1
    grep -E '^\| [0-9]+ ' "$out.log" | sed "s/^/$label round $r /"
  done
done
cp "$B" "$ROOT/target/release/hookgate"
echo "outputs: $WORK" >&2
