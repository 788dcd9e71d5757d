#!/usr/bin/env bash
# Serve the bundle the pipeline wrote (models/current) on http://127.0.0.1:${PORT:-8000}/ for a
# local try-out: migrates the database (data/serve.db unless RAKUTEN_DATABASE_URL is set),
# creates a `demo` user with the `predict` scope and a random password the first time (saved in
# .demo-credentials, mode 600, ignored by git), then runs the server in the foreground (Ctrl-C
# stops it). Development settings: an unset RAKUTEN_JWT_SECRET becomes a random per-run key.
# For a real deployment follow docs/serving.md (RAKUTEN_ENVIRONMENT=production, a real secret).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-uv run --frozen}
PORT=${PORT:-8000}
CREDENTIALS=.demo-credentials
MODEL=${RAKUTEN_MODEL_PATH:-models/current}

if [[ "$MODEL" != *:/* && ! -f "$MODEL/bundle.json" ]]; then
  echo "serve-local: no model bundle at $MODEL; run \`make run\` first (it trains one)" >&2
  exit 2
fi

$RUN rakuten-serve db upgrade
if [[ ! -s "$CREDENTIALS" ]]; then
  password=$(python3 -c "import secrets; print(secrets.token_urlsafe(18))")
  # the password goes through stdin, never argv (visible in ps) or the logs
  if ! printf '%s\n' "$password" | $RUN rakuten-serve users create demo -s predict --password-stdin; then
    echo "serve-local: could not create the demo user (it may exist from an earlier run whose" >&2
    echo "$CREDENTIALS was deleted); use another user or a fresh database" >&2
    exit 1
  fi
  (umask 077 && printf 'username=demo\npassword=%s\n' "$password" >"$CREDENTIALS")
  echo "serve-local: created user demo; its password is in $CREDENTIALS"
fi
echo "serve-local: web page http://127.0.0.1:$PORT/  API docs http://127.0.0.1:$PORT/docs"
echo "serve-local: log in as demo with the password in $CREDENTIALS"
exec $RUN rakuten-serve run --host 127.0.0.1 --port "$PORT" --no-migrate
