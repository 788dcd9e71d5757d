#!/usr/bin/env bash
# One-shot set-up of Airflow in the compose stack (service airflow-init), idempotent:
#   1. `airflow db migrate` and `airflow sync-perm` (the default roles); the `airflow` database
#      and its owner role come from the stack's db-roles job (docker/postgres/roles.sh);
#   2. the admin user (STACK_AIRFLOW_ADMIN_USER, generated password from its file) and the alert
#      webhook's service account (role User: may trigger DAG runs, nothing else), password from
#      its file.
# Passwords come from files, never from the environment, this script or a log line.
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?}" "${AIRFLOW_ADMIN_PASSWORD_FILE:?}" "${AIRFLOW_WEBHOOK_USER:?}"
: "${AIRFLOW_WEBHOOK_PASSWORD_FILE:?}"

airflow db migrate
airflow sync-perm  # the default roles (User, Op, Viewer) exist only after it

ensure_user() {  # user, role, password (from the caller's variable, not argv of this script)
  if airflow users list --output json | python -c \
      "import json, sys; sys.exit(0 if any(u['username'] == sys.argv[1] for u in json.load(sys.stdin)) else 1)" "$1"; then
    echo "airflow user $1 exists"
  else
    airflow users create --username "$1" --role "$2" --firstname "$1" --lastname rakuten \
      --email "$1@localhost" --password "$3" >/dev/null
    echo "airflow user $1 created ($2)"
  fi
}
read_secret() {  # file -> its content; an empty file stops the set-up, naming the file
  local value
  value=$(<"$1")
  if [[ -z "$value" ]]; then
    echo "airflow-init: $1 is empty (the secrets job writes it: docs/security.md)" >&2
    exit 2
  fi
  printf '%s' "$value"
}
ensure_user "$AIRFLOW_ADMIN_USER" Admin "$(read_secret "$AIRFLOW_ADMIN_PASSWORD_FILE")"
ensure_user "$AIRFLOW_WEBHOOK_USER" User "$(read_secret "$AIRFLOW_WEBHOOK_PASSWORD_FILE")"
