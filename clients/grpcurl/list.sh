#!/usr/bin/env bash
# Lists the services the server exposes (alert, health, reflection).
# Address from ALERTSTREAM_ADDR (default 127.0.0.1:50051); grpcurl from $GRPCURL, else from PATH.
# Needs no proto file: the server offers reflection.
set -euo pipefail
addr="${ALERTSTREAM_ADDR:-127.0.0.1:50051}"
grpcurl="${GRPCURL:-grpcurl}"
exec "$grpcurl" -plaintext "$addr" list
