#!/usr/bin/env bash
# Runs the cargo fuzz targets (fuzz/fuzz_targets): ledger, policy, template.
#
#   bash scripts/fuzz.sh                 # each target for 10 minutes
#   bash scripts/fuzz.sh ledger 60       # one target, 60 seconds
#
# cargo-fuzz is installed from crates.io into a cache outside the clone the
# first time. The toolchain here is stable: RUSTC_BOOTSTRAP lets cargo fuzz
# pass the coverage flags libFuzzer needs; no sanitizer is used (the engine
# has no unsafe code of its own; with a nightly toolchain, drop
# `--sanitizer none` to add AddressSanitizer). The hand-written seeds are
# fuzz/seeds/<target>/; inputs that grow coverage go to
# fuzz/corpus/<target>/ (shrink it with `cargo fuzz cmin` before
# committing); a crash is written to fuzz/artifacts/<target>/ and its path
# printed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${DUNNING_TOOLS:-$HOME/.cache/dunning-tools}"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz@0.13.2 --root "$tools"
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${DUNNING_FUZZ_TARGET:-$HOME/.cache/dunning-fuzz-target}"
targets=("${1:-ledger policy template}")
seconds="${2:-600}"
for t in ${targets[@]}; do
    echo "== fuzz $t for ${seconds}s"
    mkdir -p "fuzz/corpus/$t"
    # The shipped templates are seeds of the template target as they stand.
    extra=()
    [ "$t" = template ] && extra=(rules/retail-fr/templates)
    cargo fuzz run --fuzz-dir fuzz --sanitizer none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" "${extra[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -max_len=65536
done
