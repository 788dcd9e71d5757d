#!/usr/bin/env bash
# Builds the platform's images from the repository root and pushes them as
# $REGISTRY/rakuten-<name>:$TAG (the CI publish workflow runs it on a version tag, once per stage).
#   REGISTRY=ghcr.io/owner TAG=v1.2.0 bash scripts/publish-images.sh [--dry-run]
# --dry-run prints the docker commands instead of running them. Exit 2 when a variable is
# missing or a Dockerfile is absent (before anything is built).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=(
  "data=services/data/Dockerfile"
  "train=services/train/Dockerfile"
  "predict=services/predict/Dockerfile"
  "serve=services/serve/Dockerfile"
  "monitor=services/monitor/Dockerfile"
  "mlflow=docker/mlflow/Dockerfile"
  "proxy=docker/proxy/Dockerfile"
)

dry_run=0
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=1 ;;
  *) echo "usage: REGISTRY=... TAG=... $0 [--dry-run]" >&2; exit 2 ;;
esac
if [[ -z "${REGISTRY:-}" || -z "${TAG:-}" ]]; then
  echo "publish-images: set REGISTRY (e.g. ghcr.io/owner) and TAG (e.g. v1.2.0)" >&2
  exit 2
fi
if ! [[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "publish-images: TAG '$TAG' is not a valid image tag" >&2
  exit 2
fi
for entry in "${IMAGES[@]}"; do
  if [[ ! -f "${entry#*=}" ]]; then
    echo "publish-images: ${entry#*=} is missing" >&2
    exit 2
  fi
done

run() {
  if ((dry_run)); then
    echo "+ $*"
  else
    "$@"
  fi
}

for entry in "${IMAGES[@]}"; do
  name=${entry%%=*}
  ref="${REGISTRY%/}/rakuten-$name:$TAG"
  run docker build --file "${entry#*=}" --tag "$ref" .
  run docker push "$ref"
done
