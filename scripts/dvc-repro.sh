#!/usr/bin/env bash
# The platform's pipeline on the embedded default, through DVC:
#   data (offline sample unless params.yaml says data.source: hub) -> prepare -> train
#   -> evaluate -> predict (data/predictions/test.csv)
# Stages already up to date are skipped; extra arguments go to `dvc repro` (e.g. --force, a stage).
# MLflow logs to a local store unless MLFLOW_TRACKING_URI is set. See docs/pipeline.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-uv run --frozen}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}  # TensorFlow C++ info lines; warnings stay

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "dvc-repro: needs a git checkout (DVC records the pipeline's state in git)" >&2
  exit 2
fi
started=$(date +%s)
$RUN dvc repro "$@"
echo "== pipeline up to date in $(( $(date +%s) - started ))s"
if [[ -f reports/metrics.json ]]; then  # the headline figures; `dvc metrics show` has them all
  $RUN python - <<'PY'
import json

m = json.load(open("reports/metrics.json", encoding="utf-8"))
print(f"== test split ({m['n']} rows), reports/metrics.json:")
print(f"   weighted F1 {m['weighted_f1']:.4f}  macro F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}")
print(f"   weighted F1 text only {m['text_only_weighted_f1']:.4f}  image only {m['image_only_weighted_f1']:.4f}")
PY
fi
if [[ -f data/predictions/test.summary.json ]]; then
  echo "== predictions: data/predictions/test.csv (summary: data/predictions/test.summary.json)"
fi
