#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain: Python 3 (the
# independent reference implementation used by the tests) and the rustfmt
# and clippy components. Safe to run again.
set -euo pipefail
if ! command -v python3 >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3
  else
    echo "setup: python3 is needed by the tests; install it" >&2
    exit 1
  fi
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
