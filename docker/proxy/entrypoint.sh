#!/bin/sh
# Picks the proxy's server configuration: HTTPS when a certificate and key are mounted at
# /etc/nginx/tls (STACK_TLS_DIR in .env), plain HTTP otherwise; renders the @...@ values from
# the environment (limits, the published HTTPS port) into /etc/nginx/conf.d (a tmpfs: the root
# file system is read-only); then runs nginx in the foreground. The configuration is tested
# first so a bad certificate or limit stops here, loudly.
#
# The serve replicas: OSS nginx before 1.27.3 cannot re-resolve the servers of an upstream
# block, and only an upstream block has passive health checks (max_fails, shared by the
# workers). So this script writes the upstream itself, one `server` per address Docker's DNS
# gives for PROXY_UPSTREAM_HOST, and a loop asks again every PROXY_RESOLVE_INTERVAL_S seconds.
# A new address (`--scale serve=N`, a replica recreated with another address) is written and
# nginx reloaded at once. A reload is graceful for the requests in flight, but a client that
# sends its next request on a keep-alive connection the old worker is closing gets an error
# (measured: 2 to 6 per reload under 8 busy connections), so an address that disappeared is
# dropped only once it has been gone PROXY_SHRINK_AFTER_S seconds: meanwhile the passive checks
# skip it (a killed replica fails within the 1 s connect time-out and is set aside for 5 s),
# and a replica restarted with its old address needs no reload at all. An empty answer keeps
# the last set: a DNS hiccup must not remove every replica. docs/deploy.md, "Failover".
set -eu
: "${PROXY_HTTPS_PORT:=443}" "${PROXY_TOKEN_RATE:=20r/m}" "${PROXY_TOKEN_BURST:=10}"
: "${PROXY_API_RATE:=20r/s}" "${PROXY_API_BURST:=40}" "${PROXY_CONN_LIMIT:=64}"
: "${PROXY_UPSTREAM_HOST:=serve}" "${PROXY_UPSTREAM_PORT:=8000}" "${PROXY_RESOLVE_INTERVAL_S:=2}"
: "${PROXY_SHRINK_AFTER_S:=30}"
suffix=":$PROXY_HTTPS_PORT"
[ "$PROXY_HTTPS_PORT" = 443 ] && suffix=""
render() {  # template -> destination
  sed -e "s#@HTTPS_PORT_SUFFIX@#$suffix#g" -e "s#@TOKEN_RATE@#$PROXY_TOKEN_RATE#g" \
      -e "s#@TOKEN_BURST@#$PROXY_TOKEN_BURST#g" -e "s#@API_RATE@#$PROXY_API_RATE#g" \
      -e "s#@API_BURST@#$PROXY_API_BURST#g" -e "s#@CONN_LIMIT@#$PROXY_CONN_LIMIT#g" "$1" > "$2"
}
resolve() {  # the replicas' IPv4 addresses, sorted, on one line ("" when none)
  getent ahostsv4 "$PROXY_UPSTREAM_HOST" 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ' \
    | sed 's/ $//' || true
}
upstream=/etc/nginx/conf.d/01-rakuten-upstream.conf
write_upstream() {  # addresses -> the upstream block, replaced in one rename
  {
    echo "# written by rakuten-proxy-entrypoint from Docker's DNS ($PROXY_UPSTREAM_HOST)"
    echo "upstream rakuten_serve {"
    echo "    zone rakuten_serve 64k;"
    if [ -z "$1" ]; then
      echo "    server 127.0.0.1:$PROXY_UPSTREAM_PORT down;  # none resolved yet: 502 at once"
    fi
    for address in $1; do
      # one failure (refused, reset, unreachable, 1 s without a connection) sets a replica
      # aside for 5 s; then one request tries it again
      echo "    server $address:$PROXY_UPSTREAM_PORT max_fails=1 fail_timeout=5s;"
    done
    echo "}"
  } > "$upstream.new"
  mv "$upstream.new" "$upstream"
}
render /etc/nginx/rakuten/zones.conf /etc/nginx/conf.d/00-rakuten-zones.conf
render /etc/nginx/rakuten/routes.conf /etc/nginx/conf.d/rakuten-routes.inc
if [ -s /etc/nginx/tls/tls.crt ] && [ -s /etc/nginx/tls/tls.key ]; then
  render /etc/nginx/rakuten/https.conf /etc/nginx/conf.d/rakuten.conf
  echo "proxy: TLS enabled (certificate /etc/nginx/tls/tls.crt)"
else
  render /etc/nginx/rakuten/http.conf /etc/nginx/conf.d/rakuten.conf
  echo "proxy: no certificate in /etc/nginx/tls: plain HTTP"
fi
replicas=$(resolve)
write_upstream "$replicas"
echo "proxy: $PROXY_UPSTREAM_HOST replicas: ${replicas:-none yet}"
nginx -t -q
only_fewer() {  # whether every address of $1 is already in $2
  for address in $1; do
    case " $2 " in *" $address "*) ;; *) return 1 ;; esac
  done
}
(
  shrunk_at=""
  while sleep "$PROXY_RESOLVE_INTERVAL_S"; do
    now=$(resolve)
    if [ -z "$now" ] || [ "$now" = "$replicas" ]; then
      shrunk_at=""
      continue
    fi
    if only_fewer "$now" "$replicas"; then
      [ -n "$shrunk_at" ] || shrunk_at=$(date +%s)
      [ $(($(date +%s) - shrunk_at)) -ge "$PROXY_SHRINK_AFTER_S" ] || continue
    fi
    write_upstream "$now"
    if nginx -t -q && nginx -s reload; then
      echo "proxy: $PROXY_UPSTREAM_HOST replicas: $now (were: ${replicas:-none}); reloaded"
      replicas=$now
      shrunk_at=""
    fi
  done
) &
exec nginx -g 'daemon off;'
