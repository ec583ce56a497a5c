#!/usr/bin/env bash
# Builds dunning (the test profile, dependencies optimised; use --release
# for production nights) and runs every night of the shipped `holds` fixture, one
# after the other on one state folder, as a scheduler would.
# Output: ${DEMO_DIR:-/tmp/dunning-demo}/out/<night>/ and .../state/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked
bin="${CARGO_TARGET_DIR:-target}/debug/dunning"
demo="${DEMO_DIR:-/tmp/dunning-demo}"
rm -rf "$demo"
mkdir -p "$demo"
fx=fixtures/holds
for night in "$fx"/nights/*/; do
  d=$(basename "$night")
  "$bin" run --policy rules/retail-fr \
    --ledger "$night/ledger.csv" --debtors "$fx/debtors.csv" --events "$fx/events.csv" \
    --as-of "$d" --state "$demo/state" --out "$demo/out/$d"
done
echo
echo "last night's decisions ($demo/out/$d/decisions.csv):"
cut -d, -f1-7 "$demo/out/$d/decisions.csv"
