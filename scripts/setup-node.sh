#!/usr/bin/env bash
# Sets up the Node.js clients in clients/node: installs Node.js and npm from Debian's packages if the machine has no
# `node`, then installs the exact packages of clients/node/package-lock.json (`npm ci`). Idempotent; runnable from
# any directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-node.sh: no node/npm on this machine; installing Debian's nodejs and npm" >&2
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

cd "$root/clients/node"
npm ci --no-audit --no-fund --loglevel=error
echo "setup-node.sh: clients/node ready (node $(node --version), @grpc/grpc-js $(node -p 'require("@grpc/grpc-js/package.json").version'))"
