#!/usr/bin/env bash
# Build time and size of each image of the compose stack, measured side by side in one run.
#
#   bash bench/docker_images.sh            # cold: every image built with --no-cache
#   bash bench/docker_images.sh --warm     # a source change: a comment appended to one source
#                                          # file of each service, dependency layers from cache
#
# Needs a Docker engine (../shared/tools/docker-up) and the base images
# (../shared/tools/offline-images on machines without a registry). Prints a table; asserts
# nothing. The Python services all build from the root Dockerfile (PACKAGE and the target
# name the service). real_MB corrects the size to the real python slim base: the stand-in that
# offline-images builds is bigger (REAL_BASE_MB, default 130, the size of
# python:3.11.13-slim-bookworm on Docker Hub, replaces the stand-in's size).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=cold
[[ "${1:-}" == "--warm" ]] && mode=warm
tag=bench

# image  Dockerfile  a source file whose change must not rebuild the dependencies
images=(
  "data Dockerfile services/data/src/rakuten_data/__init__.py"
  "train Dockerfile services/train/src/rakuten_train/__init__.py"
  "predict Dockerfile services/predict/src/rakuten_predict/__init__.py"
  "serve Dockerfile services/serve/src/rakuten_serve/__init__.py"
  "mlflow docker/mlflow/Dockerfile -"
  "proxy docker/proxy/Dockerfile docker/proxy/conf/routes.conf"
  "monitor Dockerfile services/monitor/src/rakuten_monitor/__init__.py"
)
base_image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
base_mb=$(docker image inspect -f '{{.Size}}' "$base_image" | awk '{ printf "%.0f", $1 / 1000000 }')
real_base_mb=${REAL_BASE_MB:-130}
echo "base $base_image: ${base_mb} MB here, ${real_base_mb} MB real"

printf '%-8s %-6s %10s %10s %10s\n' image mode build_s size_MB real_MB
for entry in "${images[@]}"; do
  read -r name dockerfile source <<<"$entry"
  args=(-q -f "$dockerfile" -t "rakuten-$name:$tag")
  [[ $dockerfile == Dockerfile ]] && args+=(--build-arg "PACKAGE=$name" --target "$name")
  backup=""
  if [[ $mode == cold ]]; then
    args+=(--no-cache)
  elif [[ $source != - ]]; then
    backup=$(mktemp)
    cp "$source" "$backup"
    echo "# bench: $(date +%s%N)" >>"$source"
  fi
  started=$(date +%s.%N)
  log=$(mktemp)
  docker build "${args[@]}" . >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  rm -f "$log"
  ended=$(date +%s.%N)
  if [[ -n $backup ]]; then
    cp "$backup" "$source"
    rm -f "$backup"
  fi
  bytes=$(docker image inspect -f '{{.Size}}' "rakuten-$name:$tag")
  # the proxy's base is nginx's, not python's: no correction
  shift_mb=$((base_mb - real_base_mb))
  [[ $name == proxy ]] && shift_mb=0
  awk -v n="$name" -v m="$mode" -v s="$started" -v e="$ended" -v b="$bytes" -v d="$shift_mb" \
    'BEGIN { printf "%-8s %-6s %10.0f %10.0f %10.0f\n", n, m, e - s, b / 1e6, b / 1e6 - d }'
done
