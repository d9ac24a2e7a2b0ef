#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time (FUZZ_SECONDS, default 45 s each), starting from its committed
# corpus, which it leaves as it is: what a run finds new goes to a scratch directory (to keep some, run the target
# on its corpus, `cargo fuzz cmin` it and commit). cargo-fuzz runs on the stable toolchain without a sanitizer
# (`-s none`); it is installed first if this machine has none. A finding fails the run, prints libFuzzer's report
# and leaves its input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds="${FUZZ_SECONDS:-45}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
log="$scratch/log"
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  if ! cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- -max_total_time="$seconds" \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz: $target found a problem (its input is in fuzz/artifacts/$target/)"
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  echo "fuzz: $target: ${runs:-?} inputs in ${seconds}s, no finding"
done
