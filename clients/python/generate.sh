#!/usr/bin/env bash
# Generates the Python stubs of proto/alertstream/v1/alertstream.proto into clients/python/alertstream/v1/
# (alertstream_pb2.py, alertstream_pb2.pyi, alertstream_pb2_grpc.py), so that
#   from alertstream.v1 import alertstream_pb2, alertstream_pb2_grpc
# works with clients/python on sys.path. The generated files are gitignored: never edit or commit them.
# Uses the venv's python (<repo>/.venv, made by scripts/setup-venv.sh) unless $PYTHON is set.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="clients/python"

if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "generate.sh: $python has no grpc_tools; run scripts/setup-venv.sh first" >&2
  exit 1
fi

cd "$root"
# Drop stale outputs first so a removed message or service never lingers.
rm -f "$out"/alertstream/v1/*_pb2*.py "$out"/alertstream/v1/*_pb2*.pyi
# python -m grpc_tools.protoc adds its bundled well-known protos (google/protobuf/timestamp.proto) to the include path.
"$python" -m grpc_tools.protoc \
  -I proto \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --pyi_out="$out" \
  proto/alertstream/v1/alertstream.proto

# Prove the stubs import the way the clients use them.
PYTHONPATH="$root/$out" "$python" -c 'from alertstream.v1 import alertstream_pb2, alertstream_pb2_grpc'
