#!/usr/bin/env bash
# Evaluates one reading (the classic per-datapoint call); with the default rules the status is "temp too low".
# Address from ALERTSTREAM_ADDR (default 127.0.0.1:50051); grpcurl from $GRPCURL, else from PATH.
# Needs no proto file: the server offers reflection.
set -euo pipefail
addr="${ALERTSTREAM_ADDR:-127.0.0.1:50051}"
grpcurl="${GRPCURL:-grpcurl}"
exec "$grpcurl" -plaintext -d '{"sensor_id":"line-1","values":{"temperature":8,"pH":4}}' "$addr" alertstream.v1.AlertService/Evaluate
