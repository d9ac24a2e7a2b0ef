#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds the Python venv with the real interop clients (grpcio,
# requests, grpcurl) and the alertstream client package (its stubs generated from the proto as it is built),
# installs the Node.js client packages (grpc-js) and Debian's promtool (scripts/setup-tools.sh), then runs every
# test of the workspace (the product's unit and integration tests, interop and the README's run command; the
# engine's and the rules loader's tests, property tests included; the bench harness's own checks; the criterion
# benches once each in test mode).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-venv.sh
scripts/setup-node.sh
scripts/setup-tools.sh
cargo test --locked --workspace --all-targets
