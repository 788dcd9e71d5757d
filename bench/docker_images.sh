#!/usr/bin/env bash
# Build time and size of each image of the compose stack, measured side by side in one run.
#
#   bash bench/docker_images.sh            # cold: every image built with --no-cache
#   bash bench/docker_images.sh --warm     # a source change: a comment appended to one source
#                                          # file of each service, dependency layers from cache
#
# Needs a Docker engine (../shared/tools/docker-up) and the base images
# (../shared/tools/offline-images on machines without a registry). Prints a table; asserts
# nothing. Cold builds download the locked wheels (TensorFlow about 600 MB) once per image, as
# --no-cache ignores the layer shared by the train, predict and serve Dockerfiles.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=cold
[[ "${1:-}" == "--warm" ]] && mode=warm
tag=bench

# image  Dockerfile  a source file whose change must not rebuild the dependencies
images=(
  "data services/data/Dockerfile services/data/src/rakuten_data/__init__.py"
  "train services/train/Dockerfile services/train/src/rakuten_train/__init__.py"
  "predict services/predict/Dockerfile services/predict/src/rakuten_predict/__init__.py"
  "serve services/serve/Dockerfile services/serve/src/rakuten_serve/__init__.py"
  "mlflow docker/mlflow/Dockerfile -"
  "proxy docker/proxy/Dockerfile docker/proxy/conf/routes.conf"
  "monitor services/monitor/Dockerfile services/monitor/src/rakuten_monitor/__init__.py"
)

printf '%-8s %-6s %10s %10s\n' image mode build_s size_MB
for entry in "${images[@]}"; do
  read -r name dockerfile source <<<"$entry"
  args=(-q -f "$dockerfile" -t "rakuten-$name:$tag")
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
  awk -v n="$name" -v m="$mode" -v s="$started" -v e="$ended" -v b="$bytes" \
    'BEGIN { printf "%-8s %-6s %10.0f %10.0f\n", n, m, e - s, b / 1000000 }'
done
