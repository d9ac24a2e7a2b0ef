#!/usr/bin/env bash
# The Numenta Anomaly Benchmark through alertstream (docs/DETECTION.md): builds the server and the benchmark in
# release mode, then scores examples/anomaly.toml's FIRING alerts on NAB's 58 series through replay and through a
# live server (--lateness 1h), and each detector's per-row score at its best threshold, with NAB's three profiles.
# Reads the data from ../shared/nab (NAB_DATA overrides); never copies it into the project. Extra arguments go to
# alertstream-nab (--rules FILE, --score EXPR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked -p alertstream -p alertstream-bench --bins
exec target/release/alertstream-nab --data "${NAB_DATA:-../shared/nab}" --live \
  --score 'anomaly(value)' --score 'novelty(value)' --score 'likelihood(novelty(value))' \
  --score 'abs(zscore(avg(value, 5)))' --score 'abs(zscore(value, 6400))' "$@"
