#!/usr/bin/env bash
# Creates .venv-bentoml: BentoML for bench/serve_predict.py's peer, outside uv.lock.
#
#   bash bench/bentoml/setup.sh            # install bench/bentoml/requirements.lock (idempotent)
#   bash bench/bentoml/setup.sh --relock   # resolve requirements.txt afresh, rewrite the lock
#
# The environment gets BentoML and the few run-time packages pinned in requirements.lock, then
# the workspace's libs/core and services/serve as editable installs WITHOUT their dependencies
# (the service imports rakuten_serve.predictor and rakuten_serve.settings only: ONNX Runtime,
# numpy, Pillow, pydantic, pydantic-settings). Same Python as the workspace (.venv's, else
# python3.11).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=bench/bentoml
venv=${BENTOML_VENV:-.venv-bentoml}
relock=false
[[ "${1:-}" == "--relock" ]] && relock=true

if [[ -x .venv/bin/python ]]; then
  python=.venv/bin/python  # `-m venv` builds on its base interpreter: the workspace's Python
else
  python=$(command -v python3.11 || command -v python3)
fi
if ! $relock && [[ -x $venv/bin/bentoml ]] && cmp -s $here/requirements.lock "$venv/.lock"; then
  echo "$venv is up to date ($("$venv/bin/bentoml" --version 2>/dev/null | tail -1))"
  exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
if $relock; then
  "$venv/bin/python" -m pip install -qq -r $here/requirements.txt
  {
    echo "# pip freeze of .venv-bentoml after \`pip install -r requirements.txt\` (setup.sh --relock)"
    "$venv/bin/python" -m pip freeze --exclude-editable
  } >$here/requirements.lock
else
  "$venv/bin/python" -m pip install -qq -r $here/requirements.lock
fi
"$venv/bin/python" -m pip install -qq --no-deps -e libs/core -e services/serve
"$venv/bin/python" -c "import bentoml, rakuten_serve.predictor, rakuten_serve.settings"
cp $here/requirements.lock "$venv/.lock"
echo "$venv ready: $("$venv/bin/bentoml" --version 2>/dev/null | tail -1)"
