#!/usr/bin/env bash
# Opens one AlertService/Stream, sends the eight readings of readings.json (next to this script) of two sensors,
# half-closes, and prints every alert as it comes back. With the default rules it yields, in this order
# (sensor, rule, state, reading_seq):
#   line-2  temp_too_low     FIRING    2   (temperature 8.2 < 10)
#   line-1  ph_too_high      FIRING    3   (pH 5.8 > 5.5)
#   line-2  invalid_reading  FIRING    4   (no values; the stream goes on, line-2's states are kept)
#   line-2  temp_too_low     RESOLVED  5   (temperature 12.4)
#   line-1  temp_too_low     FIRING    6   (temperature 9.1; pH 5.7 is still high: nothing new)
#   line-1  temp_too_low     RESOLVED  7   (temperature 18.0; alerts of one reading come in rule order)
#   line-1  ph_too_high      RESOLVED  7   (pH 5.2)
#   line-2  ph_too_high      FIRING    8   (pH 6.0)
# Reading 1 (line-1, all normal, its first false) yields nothing. Every alert carries its reading's time and values.
# Address from ALERTSTREAM_ADDR (default 127.0.0.1:50051); grpcurl from $GRPCURL, else from PATH.
# Needs no proto file: the server offers reflection.
set -euo pipefail
addr="${ALERTSTREAM_ADDR:-127.0.0.1:50051}"
grpcurl="${GRPCURL:-grpcurl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$grpcurl" -plaintext -d @ "$addr" alertstream.v1.AlertService/Stream < "$here/readings.json"
