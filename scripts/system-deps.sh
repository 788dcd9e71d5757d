#!/usr/bin/env bash
# Installs the real servers, the browser and the checkers the tests use, from Debian packages,
# when missing.
# Idempotent and quiet when everything is already there. Needs root (CI and dev machines are).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)  # actionlint checks run: steps with it
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # the compose e2e's TLS certificate
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # load tests (tests/reliability) and benchmarks
# Monitoring: promtool and the real Prometheus, Alertmanager (amtool), Pushgateway
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if ((${#need[@]})); then
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "system-deps: redis-server $(redis-server --version | awk '{print $3}'), $(chromium --version 2>/dev/null | head -1), postgres $(ls /usr/lib/postgresql 2>/dev/null | tail -1), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "system-deps: $(prometheus --version 2>&1 | head -1), $(amtool --version 2>&1 | head -1), $(prometheus-pushgateway --version 2>&1 | head -1)"
