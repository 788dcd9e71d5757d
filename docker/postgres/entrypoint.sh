#!/bin/bash
# The postgres service's entrypoint: hands the superuser's password from its generated file
# (POSTGRES_PASSWORD_FILE) to the image's own entrypoint, which uses it only when it first
# initialises an empty data folder. Works with the official image (which would read the file
# itself) and with images that honour only POSTGRES_PASSWORD. The password never reaches a
# command line or a log line.
set -euo pipefail
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
  POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
  export POSTGRES_PASSWORD
  unset POSTGRES_PASSWORD_FILE
fi
exec docker-entrypoint.sh "$@"
