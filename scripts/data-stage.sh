#!/usr/bin/env bash
# DVC `data` stage: the raw data, from the Hugging Face Hub or generated offline.
#
# DVC has no conditional stages, so this one stage dispatches on `data.source` (params.yaml):
#   hub     rakuten-data download --out OUT --revision REV
#   sample  rakuten-data sample --out OUT --train-rows N --test-rows M --seed S
#   auto    hub; when the Hub cannot be reached (download exit 3, and only then), sample.
#           Any other download failure (bad checksum, unknown revision, ...) still fails.
# dvc.yaml passes every value explicitly (templated from params.yaml); nothing is read here.
# --reuse (the compose job, at every start): a command whose output carries the stamp of the
# same inputs and code does nothing (rakuten_core.job_stamp); DVC decides by itself and omits it.
set -euo pipefail

usage() {
  echo "usage: $0 --source auto|hub|sample --out DIR [--revision REV] [--train-rows N] [--test-rows M] [--seed S] [--reuse]" >&2
  exit 2
}

source="" out="" revision="main" train_rows="" test_rows="" seed="" reuse=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) source="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    --train-rows) train_rows="$2"; shift 2 ;;
    --test-rows) test_rows="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --reuse) reuse=(--reuse); shift ;;
    *) usage ;;
  esac
done
[[ -n "$source" && -n "$out" ]] || usage

EXIT_HUB_UNREACHABLE=3  # rakuten-data download: the Hub did not answer

sample_args=(--out "$out" "${reuse[@]}")
[[ -n "$train_rows" ]] && sample_args+=(--train-rows "$train_rows")
[[ -n "$test_rows" ]] && sample_args+=(--test-rows "$test_rows")
[[ -n "$seed" ]] && sample_args+=(--seed "$seed")

case "$source" in
  hub)
    exec rakuten-data download --out "$out" --revision "$revision" "${reuse[@]}"
    ;;
  sample)
    exec rakuten-data sample "${sample_args[@]}"
    ;;
  auto)
    rc=0
    rakuten-data download --out "$out" --revision "$revision" "${reuse[@]}" || rc=$?
    if [[ $rc -eq $EXIT_HUB_UNREACHABLE ]]; then
      echo "data: the Hub cannot be reached; falling back to the offline sample (data.source: auto)" >&2
      exec rakuten-data sample "${sample_args[@]}"
    fi
    exit "$rc"
    ;;
  *)
    echo "data.source must be 'auto', 'hub' or 'sample', got '$source'" >&2
    exit 2
    ;;
esac
