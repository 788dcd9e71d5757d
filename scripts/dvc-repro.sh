#!/usr/bin/env bash
# The platform's pipeline on the embedded default, through DVC:
#   data (offline sample unless params.yaml says data.source: hub) -> prepare -> train
#   -> evaluate -> predict (data/predictions/test.csv)
# Stages already up to date are skipped; extra arguments go to `dvc repro` (e.g. --force, a stage).
# MLflow logs to a local store unless MLFLOW_TRACKING_URI is set. See docs/pipeline.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-uv run --frozen}

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "dvc-repro: needs a git checkout (DVC records the pipeline's state in git)" >&2
  exit 2
fi
started=$(date +%s)
$RUN dvc repro "$@"
echo "== pipeline up to date in $(( $(date +%s) - started ))s"
$RUN dvc metrics show
if [[ -f data/predictions/test.summary.json ]]; then
  echo "== predictions: data/predictions/test.csv (summary: data/predictions/test.summary.json)"
fi
