#!/bin/sh
# Picks the proxy's server configuration: HTTPS when a certificate and key are mounted at
# /etc/nginx/tls (STACK_TLS_DIR in .env), plain HTTP otherwise; renders the @...@ values from
# the environment (limits, the published HTTPS port) into /etc/nginx/conf.d (a tmpfs: the root
# file system is read-only); then runs nginx in the foreground. The configuration is tested
# first so a bad certificate or limit stops here, loudly.
set -eu
: "${PROXY_HTTPS_PORT:=443}" "${PROXY_TOKEN_RATE:=20r/m}" "${PROXY_TOKEN_BURST:=10}"
: "${PROXY_API_RATE:=20r/s}" "${PROXY_API_BURST:=40}" "${PROXY_CONN_LIMIT:=64}"
suffix=":$PROXY_HTTPS_PORT"
[ "$PROXY_HTTPS_PORT" = 443 ] && suffix=""
render() {  # template -> destination
  sed -e "s#@HTTPS_PORT_SUFFIX@#$suffix#g" -e "s#@TOKEN_RATE@#$PROXY_TOKEN_RATE#g" \
      -e "s#@TOKEN_BURST@#$PROXY_TOKEN_BURST#g" -e "s#@API_RATE@#$PROXY_API_RATE#g" \
      -e "s#@API_BURST@#$PROXY_API_BURST#g" -e "s#@CONN_LIMIT@#$PROXY_CONN_LIMIT#g" "$1" > "$2"
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
nginx -t -q
exec nginx -g 'daemon off;'
