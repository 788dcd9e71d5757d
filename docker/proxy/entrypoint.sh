#!/bin/sh
# Picks the proxy's server configuration: HTTPS when a certificate and key are mounted at
# /etc/nginx/tls (STACK_TLS_DIR in .env), plain HTTP otherwise; then runs nginx in the
# foreground. The configuration is tested first so a bad certificate stops here, loudly.
set -eu
if [ -s /etc/nginx/tls/tls.crt ] && [ -s /etc/nginx/tls/tls.key ]; then
  cp /etc/nginx/rakuten/https.conf /etc/nginx/conf.d/rakuten.conf
  echo "proxy: TLS enabled (certificate /etc/nginx/tls/tls.crt)"
else
  cp /etc/nginx/rakuten/http.conf /etc/nginx/conf.d/rakuten.conf
  echo "proxy: no certificate in /etc/nginx/tls: plain HTTP"
fi
mkdir -p /var/log/rakuten
nginx -t -q
exec nginx -g 'daemon off;'
