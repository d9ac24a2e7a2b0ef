#!/usr/bin/env bash
# Checks the standard gRPC health service (SERVING while the server runs). Pass a service name to check
# it alone, e.g. ./health.sh alertstream.v1.AlertService; with none it checks the server as a whole ("").
# Address from ALERTSTREAM_ADDR (default 127.0.0.1:50051); grpcurl from $GRPCURL, else from PATH.
# Needs no proto file: the server offers reflection.
set -euo pipefail
addr="${ALERTSTREAM_ADDR:-127.0.0.1:50051}"
grpcurl="${GRPCURL:-grpcurl}"
exec "$grpcurl" -plaintext -d "{\"service\":\"${1:-}\"}" "$addr" grpc.health.v1.Health/Check
