#!/usr/bin/env bash
# Installs the Debian tools the tests run against, when this machine lacks them: promtool (package `prometheus`),
# which checks the /metrics exposition; headless Chromium with its WebDriver (`chromium`, `chromium-driver`), which
# loads the live web view; Alertmanager (`prometheus-alertmanager`) and the NATS server (`nats-server`), which the
# Alertmanager and NATS sinks send to; and nginx, which tests/load_balancing.rs puts in front of replicas.
# Installing them starts no service here. Idempotent; runnable from any directory.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
[[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
[[ -x /usr/sbin/nats-server ]] || missing+=(nats-server)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)

if ((${#missing[@]})); then
  echo "setup-tools.sh: installing Debian's ${missing[*]}" >&2
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  # Installing a service package must not start it: policy-rc.d says no to every start.
  policy="/usr/sbin/policy-rc.d"
  created_policy=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -z "$created_policy" ]] || $sudo rm -f "$policy"
fi
echo "setup-tools.sh: $(promtool --version 2>&1 | head -n 1); $(/usr/bin/chromium --version 2>/dev/null);" \
  "$(/usr/bin/prometheus-alertmanager --version 2>&1 | head -n 1); nats-server $(/usr/sbin/nats-server --version 2>&1); $(/usr/sbin/nginx -v 2>&1)"
