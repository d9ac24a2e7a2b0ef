#!/usr/bin/env bash
# Server instructions per reading, counted rather than timed: each server (alertstream, or the bare-tonic baseline)
# runs under valgrind's callgrind while alertstream-loadgen sends it a fixed load over loopback, and the user-space
# instructions it executed for that load are divided by the readings, as are the misses of callgrind's model of the
# last-level cache. Counts do not move with the machine's load the way CPU time does (on this shared 2-core machine
# the timed A/A row moves ±30 % on a bad day), so they tell small changes apart; they see neither kernel time nor
# what a miss really costs, which the timed tables (scripts/bench.sh) do. An A/A row (the baseline against itself)
# shows the counts' own spread. Takes about 6 minutes.
#
# Usage: scripts/bench-counted.sh [READINGS]   (readings per scenario, 50,000 by default)
# Needs valgrind (Debian: apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readings=${1:-50000}
command -v valgrind >/dev/null || { echo "bench-counted.sh needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
cargo build --release --locked -p alertstream -p alertstream-bench --bins
work=$(mktemp -d)
server=""
# On any exit: stop the server under measurement, if one runs; on a failure, show its log first.
cleanup() {
    local status=$?
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ]; then
        echo "bench-counted.sh failed; the last server's log:" >&2
        tail -n 20 "$work"/*.log 2>/dev/null >&2 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
loadgen=target/release/alertstream-loadgen
{ grep -v '^#' rules/default.toml; printf '\n[[rule]]\nname = "silent"\nabsent_for = "1h"\n'; } >"$work/absence.toml"

# A loopback port nothing listens on now (the server binds it a moment later).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# counted NAME READINGS STREAMS CONNECTIONS SENSORS SERVER...: sets `result` to the server's instructions per
# reading and modelled last-level misses per reading under that load (READINGS in all, shared among the streams).
# SERVER's arguments name its port `@PORT@`. Runs in this shell, so that any failure ends the script.
counted() {
    local name=$1 total_readings=$2 streams=$3 connections=$4 sensors=$5
    shift 5
    local port out
    port=$(free_port)
    out="$work/$name.out"
    valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$out" "${@//@PORT@/$port}" >"$work/$name.log" 2>&1 &
    server=$!
    local up=""
    for _ in $(seq 240); do
        if (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            up=yes
            break
        fi
        sleep 0.25
    done
    [ -n "$up" ] || { echo "$name: the server did not listen on port $port within 60 s" >&2; exit 1; }
    local per_stream=$((total_readings / streams)) per_stream_warm=$((2000 / streams + 1))
    # Warm up the process (threads, buffers, the allocator) with a load of its own; streams and their sensors are
    # new in the measured load, as they would be for any client.
    $loadgen throughput --target "127.0.0.1:$port" --streams "$streams" --connections "$connections" \
        --sensors "$sensors" --readings "$per_stream_warm" >/dev/null
    callgrind_control --zero "$server" >/dev/null
    $loadgen throughput --target "127.0.0.1:$port" --streams "$streams" --connections "$connections" \
        --sensors "$sensors" --readings "$per_stream" >/dev/null
    callgrind_control --dump "$server" >/dev/null
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
    # The first dump is `$out.1`; its `events:` line names the columns of its `totals:` line: Ir, then the
    # last-level cache's misses ILmr, DLmr and DLmw.
    result=$(awk -v n=$((per_stream * streams)) '
        /^events:/ { for (i = 2; i <= NF; i++) column[$i] = i }
        /^totals:/ { printf "%d %.2f\n", $column["Ir"] / n, ($column["ILmr"] + $column["DLmr"] + $column["DLmw"]) / n }
    ' "$out.1")
    [ -n "$result" ] || { echo "$name: no totals in the callgrind dump $out.1" >&2; exit 1; }
}

baseline=(target/release/alertstream-baseline 127.0.0.1:@PORT@)
alertstream=(target/release/alertstream serve --listen 127.0.0.1:@PORT@ --http-listen "")
absence=("${alertstream[@]}" --rules "$work/absence.toml")

echo "| scenario | measured Ir/reading | reference Ir/reading | ratio | measured LL misses/reading | reference LL misses/reading |"
echo "|---|---|---|---|---|---|"
# row LABEL "IR MISSES" "IR MISSES"
row() {
    local label=$1 ir misses ref_ir ref_misses
    read -r ir misses <<<"$2"
    read -r ref_ir ref_misses <<<"$3"
    echo "| $label | $ir | $ref_ir | **$(python3 -c "print(f'{$ir / $ref_ir:.2f}')")** | $misses | $ref_misses |"
}
counted base1 "$readings" 1 1 1 "${baseline[@]}"
b1=$result
counted base1b "$readings" 1 1 1 "${baseline[@]}"
row "A/A: baseline against itself, 1 stream" "$result" "$b1"
counted as1 "$readings" 1 1 1 "${alertstream[@]}"
row "alertstream against baseline, 1 stream" "$result" "$b1"
counted base64 "$readings" 64 8 1 "${baseline[@]}"
b64=$result
counted as64 "$readings" 64 8 1 "${alertstream[@]}"
row "alertstream against baseline, 64 streams" "$result" "$b64"
counted abs1 "$readings" 1 1 1 "${absence[@]}"
row "alertstream with an absence rule against baseline, 1 stream" "$result" "$b1"
counted abs64 "$readings" 64 8 1 "${absence[@]}"
row "alertstream with an absence rule against baseline, 64 streams" "$result" "$b64"
# Ten readings per sensor, as in scripts/bench.sh: a sensor's first reading, which makes its state, is one in ten.
counted one 1000000 1 1 1 "${alertstream[@]}"
one=$result
counted many 1000000 1 1 100000 "${alertstream[@]}"
row "alertstream, 100,000 sensors on one stream against 1 sensor (1,000,000 readings)" "$result" "$one"
