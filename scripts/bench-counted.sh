#!/usr/bin/env bash
# Server instructions per reading, counted rather than timed: each server (alertstream, or the bare-tonic baseline)
# runs under valgrind's callgrind while alertstream-loadgen sends it a fixed load over loopback, and the user-space
# instructions it executed for that load are divided by the readings, as are the misses of callgrind's model of the
# last-level cache. Counts do not move with the machine's load
# the way CPU time does (on this shared 2-core machine the timed A/A row moves ±30 % on a bad day), so they tell
# small changes apart; they do not see cache misses or kernel time, which the timed tables (scripts/bench.sh) do.
# An A/A row (the baseline against itself) shows the counts' own spread. Takes about 4 minutes.
#
# Usage: scripts/bench-counted.sh [READINGS]   (readings per scenario, 50,000 by default)
# Needs valgrind (Debian: apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readings=${1:-50000}
command -v valgrind >/dev/null || { echo "bench-counted.sh needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
cargo build --release --locked -p alertstream -p alertstream-bench --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
loadgen=target/release/alertstream-loadgen
{ grep -v '^#' rules/default.toml; printf '\n[[rule]]\nname = "silent"\nabsent_for = "1h"\n'; } >"$work/absence.toml"

# A loopback port nothing listens on.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# counted NAME READINGS STREAMS CONNECTIONS SENSORS SERVER...: prints the server's instructions per reading under
# that load (READINGS in all, shared among the streams).
counted() {
    local name=$1 total_readings=$2 streams=$3 connections=$4 sensors=$5
    shift 5
    local port out pid
    port=$(free_port)
    out="$work/$name.out"
    valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$out" "${@//PORT/$port}" >"$work/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 240); do
        (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.25
    done
    local per_stream=$((total_readings / streams)) per_stream_warm=$((2000 / streams + 1))
    # Warm up (connections, buffers, the first sensors), then count only the measured load.
    $loadgen throughput --target "127.0.0.1:$port" --streams "$streams" --connections "$connections" \
        --sensors "$sensors" --readings "$per_stream_warm" >/dev/null
    callgrind_control --zero "$pid" >/dev/null
    $loadgen throughput --target "127.0.0.1:$port" --streams "$streams" --connections "$connections" \
        --sensors "$sensors" --readings "$per_stream" >/dev/null
    callgrind_control --dump "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    # The dump's `events:` line names its columns: Ir, then the last-level cache's misses ILmr, DLmr and DLmw.
    awk -v n=$((per_stream * streams)) '
        /^events:/ { for (i = 2; i <= NF; i++) column[$i] = i }
        /^totals:/ { printf "%d %.2f\n", $column["Ir"] / n, ($column["ILmr"] + $column["DLmr"] + $column["DLmw"]) / n }
    ' "$out.1"
}

baseline=(target/release/alertstream-baseline 127.0.0.1:PORT)
alertstream=(target/release/alertstream serve --listen 127.0.0.1:PORT --http-listen "")
absence=("${alertstream[@]}" --rules "$work/absence.toml")

echo "| scenario | measured Ir/reading | reference Ir/reading | ratio | measured LL misses/reading | reference LL misses/reading |"
echo "|---|---|---|---|---|---|"
# row LABEL "IR MISSES" "IR MISSES"
row() {
    local label=$1
    read -r ir misses <<<"$2"
    read -r ref_ir ref_misses <<<"$3"
    echo "| $label | $ir | $ref_ir | **$(python3 -c "print(f'{$ir / $ref_ir:.2f}')")** | $misses | $ref_misses |"
}
b1=$(counted base1 "$readings" 1 1 1 "${baseline[@]}")
row "A/A: baseline against itself, 1 stream" "$(counted base1b "$readings" 1 1 1 "${baseline[@]}")" "$b1"
row "alertstream against baseline, 1 stream" "$(counted as1 "$readings" 1 1 1 "${alertstream[@]}")" "$b1"
b64=$(counted base64 "$readings" 64 8 1 "${baseline[@]}")
row "alertstream against baseline, 64 streams" "$(counted as64 "$readings" 64 8 1 "${alertstream[@]}")" "$b64"
row "alertstream with an absence rule against baseline, 1 stream" \
    "$(counted abs1 "$readings" 1 1 1 "${absence[@]}")" "$b1"
row "alertstream with an absence rule against baseline, 64 streams" \
    "$(counted abs64 "$readings" 64 8 1 "${absence[@]}")" "$b64"
# Ten readings per sensor, as in scripts/bench.sh: a sensor's first reading, which makes its state, is one in ten.
one=$(counted one 1000000 1 1 1 "${alertstream[@]}")
row "alertstream, 100,000 sensors on one stream against 1 sensor (1,000,000 readings)" \
    "$(counted many 1000000 1 1 100000 "${alertstream[@]}")" "$one"
