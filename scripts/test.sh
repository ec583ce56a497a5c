#!/usr/bin/env bash
# The whole test suite: unit tests, golden nights, the differential test
# against the reference implementation, crash and determinism tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --locked "$@"
