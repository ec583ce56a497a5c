#!/usr/bin/env bash
# Dependency hygiene: `cargo deny check` with deny.toml (licenses, bans,
# duplicates, sources, advisories). cargo-deny is installed from crates.io
# into a cache outside the clone the first time.
#
# The advisory database is a git repository on github.com. Where it cannot
# be fetched (a closed build network), the advisories check is reported as
# NOT RUN, loudly, and the others still gate; set DUNNING_DENY_STRICT=1 to
# fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${DUNNING_TOOLS:-$HOME/.cache/dunning-tools}"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-deny >/dev/null || ! cargo deny --version | grep -q "0.20"; then
    echo "installing cargo-deny into $tools"
    cargo install --locked cargo-deny@0.20.2 --root "$tools"
fi
cargo deny --version

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if cargo deny fetch db >"$log" 2>&1; then
    cargo deny --locked check
else
    echo "WARNING: the RustSec advisory database could not be fetched:" >&2
    grep -m1 "^fatal\|ERROR" "$log" >&2 || true
    if [ "${DUNNING_DENY_STRICT:-0}" = 1 ]; then
        exit 1
    fi
    echo "WARNING: advisories NOT checked on this run; licenses, bans and sources are." >&2
    cargo deny --locked check licenses bans sources
fi
