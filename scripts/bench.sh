#!/usr/bin/env bash
# The end-to-end benchmark: builds alertstream and, from bench/, the bare-tonic baseline and the load generator in
# release mode, then measures alertstream against the baseline, interleaved and repeated (throughput by streams,
# sensors and rules, with server and client CPU per reading; open-loop latency; memory per idle connection; an A/A
# run of the baseline against itself), and prints markdown tables of medians and ratios. Takes about 10 minutes;
# pass --quick for a smoke run, --repeat N to change repeats, --only TABLE,... for some tables.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked -p alertstream -p alertstream-bench --bins
# Idle runs hold 10,000 connections: each process needs that many file descriptors and a few more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec target/release/alertstream-loadgen compare "$@"
