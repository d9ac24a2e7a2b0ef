#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds the Python venv with the real interop clients (grpcio,
# requests, grpcurl) and the generated Python stubs, then runs every Rust test (unit, integration, interop).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-venv.sh
cargo test --locked --all-targets
