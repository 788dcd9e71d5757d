#!/usr/bin/env bash
# The platform's main job on the embedded default: data (Hub download, or the offline sample when
# the Hub cannot be reached) -> validation and preparation.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="uv run --frozen"
RAW=${RAKUTEN_RAW_DIR:-data/raw}
PROCESSED=${RAKUTEN_PROCESSED_DIR:-data/processed}

if [[ -f "$RAW/X_train_update.csv" && -f "$RAW/Y_train_CVw08PX.csv" ]]; then
  echo "== data: $RAW already holds raw data; keeping it"
elif $RUN rakuten-data download --out "$RAW"; then
  echo "== data: downloaded from the Hugging Face Hub into $RAW"
else
  echo "== data: the Hub could not be reached; generating the offline sample into $RAW"
  $RUN rakuten-data sample --out "$RAW"
fi
echo "== prepare: $RAW -> $PROCESSED"
$RUN rakuten-data prepare --raw "$RAW" --out "$PROCESSED"
