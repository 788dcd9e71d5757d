#!/usr/bin/env bash
# One-shot set-up of Airflow in the compose stack (service airflow-init), idempotent:
#   1. the `airflow` database in the stack's Postgres (also made by docker/postgres's init script
#      on a new volume; created here for a volume made before Airflow joined the stack);
#   2. `airflow db migrate` and `airflow sync-perm` (the default roles);
#   3. the admin user (STACK_AIRFLOW_ADMIN_USER / _PASSWORD from .env) and the alert webhook's
#      service account (role User: may trigger DAG runs, nothing else), password from its file.
# Passwords come from the environment or files, never from this script or a log line.
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?}" "${AIRFLOW_ADMIN_PASSWORD:?}" "${AIRFLOW_WEBHOOK_USER:?}"
: "${AIRFLOW_WEBHOOK_PASSWORD_FILE:?}" "${AIRFLOW_DB_NAME:=airflow}"

python - <<'PY'
import os

import psycopg2  # Airflow's postgres extra; PGHOST/PGUSER/PGPASSWORD come from the environment
from psycopg2 import sql

name = os.environ["AIRFLOW_DB_NAME"]
connection = psycopg2.connect(dbname="postgres")
connection.autocommit = True
with connection.cursor() as cursor:
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
connection.close()
PY

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
ensure_user "$AIRFLOW_ADMIN_USER" Admin "$AIRFLOW_ADMIN_PASSWORD"
webhook_password=$(<"$AIRFLOW_WEBHOOK_PASSWORD_FILE")
if [[ -z "$webhook_password" ]]; then
  echo "airflow-init: $AIRFLOW_WEBHOOK_PASSWORD_FILE is empty (see .env.example)" >&2
  exit 2
fi
ensure_user "$AIRFLOW_WEBHOOK_USER" User "$webhook_password"
