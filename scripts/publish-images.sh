#!/usr/bin/env bash
# Publishes the platform's images as $REGISTRY/rakuten-<name>:$TAG. The CI publish workflow runs
# it on a version tag: `build` for staging, then `promote` for production, so production runs
# the very images staging got (built once, promoted by digest; docs/security.md, "Supply chain").
#
#   REGISTRY=ghcr.io/acme-staging TAG=v1.2.0 \
#     bash scripts/publish-images.sh build --digests FILE [--dry-run]
#       builds each image from the repository root, pushes it, then writes FILE, a line per
#       image: <name>=$REGISTRY/rakuten-<name>@sha256:<digest> (the digest the registry holds).
#   SOURCE_REGISTRY=ghcr.io/acme-staging REGISTRY=ghcr.io/acme TAG=v1.2.0 \
#     bash scripts/publish-images.sh promote --digests FILE [--out FILE] [--dry-run]
#       builds nothing: copies each image of FILE (a build's output, every image once, each
#       under SOURCE_REGISTRY) by digest to $REGISTRY/rakuten-<name>:$TAG with skopeo
#       (--preserve-digests), then checks that this tag now resolves to the same digest (exit 1
#       otherwise). --out writes the promoted references, in FILE's format, once all are checked.
#       SOURCE_AUTHFILE / TARGET_AUTHFILE (optional): skopeo's credential files for each side,
#       written by `docker login` (through stdin) under separate DOCKER_CONFIG folders, so two
#       registries on the same host keep their own credentials.
#
# --dry-run prints the commands instead of running them and writes no file. Exit 2, before
# anything runs, on a usage error, a missing variable or Dockerfile, or a malformed digests file.
set -euo pipefail

# name=Dockerfile; the root Dockerfile builds every Python service (--build-arg PACKAGE=name,
# --target name)
IMAGES=(
  "data=Dockerfile"
  "train=Dockerfile"
  "predict=Dockerfile"
  "serve=Dockerfile"
  "monitor=Dockerfile"
  "mlflow=docker/mlflow/Dockerfile"
  "proxy=docker/proxy/Dockerfile"
  "pushgateway=docker/pushgateway/Dockerfile"
)
REGISTRY_PATTERN='^[a-z0-9][a-z0-9._:/-]*$'
DIGEST_PATTERN='^sha256:[0-9a-f]{64}$'

usage() {
  echo "usage: REGISTRY=... TAG=... $0 build --digests FILE [--dry-run]" >&2
  echo "       SOURCE_REGISTRY=... REGISTRY=... TAG=... $0 promote --digests FILE [--out FILE] [--dry-run]" >&2
  exit 2
}
refuse() {
  echo "publish-images: $*" >&2
  exit 2
}
absolute() {  # paths are given relative to the caller's folder, the script works from the root
  if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

mode=${1:-}
[[ "$mode" == build || "$mode" == promote ]] || usage
shift
dry_run=0 digests="" out=""
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --digests) (($# > 1)) || usage; digests=$(absolute "$2"); shift ;;
    --out) [[ "$mode" == promote && $# -gt 1 ]] || usage; out=$(absolute "$2"); shift ;;
    *) usage ;;
  esac
  shift
done
[[ -n "$digests" ]] || usage
cd "$(dirname "$0")/.."

if [[ -z "${REGISTRY:-}" || -z "${TAG:-}" ]]; then
  refuse "set REGISTRY (e.g. ghcr.io/owner) and TAG (e.g. v1.2.0)"
fi
REGISTRY=${REGISTRY%/}
[[ "$REGISTRY" =~ $REGISTRY_PATTERN ]] || refuse "REGISTRY '$REGISTRY' is not a registry path"
if ! [[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  refuse "TAG '$TAG' is not a valid image tag"
fi

short_name() {  # a repository as Docker writes it in RepoDigests
  local repo=${1#docker.io/}
  echo "${repo#index.docker.io/}"
}
run() {
  if ((dry_run)); then
    echo "+ $*"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------- build: once, for the first stage
build() {
  local entry name file ref line digest inspect lines=() stage=()
  for entry in "${IMAGES[@]}"; do
    [[ -f "${entry#*=}" ]] || refuse "${entry#*=} is missing"
  done
  for entry in "${IMAGES[@]}"; do
    name=${entry%%=*}
    file=${entry#*=}
    stage=()
    [[ "$file" == Dockerfile ]] && stage=(--build-arg "PACKAGE=$name" --target "$name")
    ref="$REGISTRY/rakuten-$name:$TAG"
    run docker build --file "$file" "${stage[@]}" --tag "$ref" .
    run docker push "$ref"
    # the digest the registry gave the push (RepoDigests is filled by it), from this repository's
    # entry (Docker Hub's are written without docker.io/); only the digest is taken from it
    inspect=(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref")
    if ((dry_run)); then
      echo "+ ${inspect[*]}"
      continue
    fi
    digest=""
    while IFS= read -r line; do
      if [[ "$(short_name "${line%@*}")" == "$(short_name "$REGISTRY/rakuten-$name")" ]]; then
        digest=${line##*@}
        break
      fi
    done < <("${inspect[@]}")
    if ! [[ "$digest" =~ $DIGEST_PATTERN ]]; then
      echo "publish-images: no registry digest for $ref after its push" >&2
      exit 1
    fi
    lines+=("$name=$REGISTRY/rakuten-$name@$digest")
  done
  if ((!dry_run)); then
    printf '%s\n' "${lines[@]}" > "$digests.tmp"
    mv "$digests.tmp" "$digests"
  fi
}

# ------------------------------------------- promote: the first stage's images, by digest, no build
declare -A SOURCES=()  # name -> registry/rakuten-name@sha256:...
read_digests() {  # every line checked before anything is copied: one per image, each once
  local line name ref known entry n=0
  [[ -f "$digests" ]] || refuse "digests file $digests is missing"
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    [[ -z "$line" ]] && continue
    name=${line%%=*}
    ref=${line#*=}
    known=0
    for entry in "${IMAGES[@]}"; do
      [[ "${entry%%=*}" == "$name" ]] && known=1
    done
    if [[ "$line" != *=* ]] || ((!known)); then
      refuse "$digests:$n: expected <image>=<registry>/rakuten-<image>@sha256:<64 hex>"
    fi
    [[ -z "${SOURCES[$name]:-}" ]] || refuse "$digests:$n: $name is listed twice"
    [[ "${ref%@*}" == "$SOURCE_REGISTRY/rakuten-$name" ]] \
      || refuse "$digests:$n: $name is not under SOURCE_REGISTRY ($SOURCE_REGISTRY/rakuten-$name)"
    [[ "$ref" == *@* && "${ref##*@}" =~ $DIGEST_PATTERN ]] \
      || refuse "$digests:$n: $name has no sha256 digest (@sha256:<64 lowercase hex>)"
    SOURCES[$name]=$ref
  done < "$digests"
  for entry in "${IMAGES[@]}"; do
    [[ -n "${SOURCES[${entry%%=*}]:-}" ]] || refuse "$digests: no digest for ${entry%%=*}"
  done
}

promote() {
  local entry name source target digest served inspect lines=() src_auth=() dst_auth=()
  local inspect_auth=()
  [[ -n "${SOURCE_REGISTRY:-}" ]] \
    || refuse "set SOURCE_REGISTRY (the registry the images were built into)"
  SOURCE_REGISTRY=${SOURCE_REGISTRY%/}
  [[ "$SOURCE_REGISTRY" =~ $REGISTRY_PATTERN ]] \
    || refuse "SOURCE_REGISTRY '$SOURCE_REGISTRY' is not a registry path"
  [[ "$SOURCE_REGISTRY" != "$REGISTRY" ]] || refuse "SOURCE_REGISTRY and REGISTRY are the same"
  read_digests
  if [[ -n "${SOURCE_AUTHFILE:-}" ]]; then src_auth=(--src-authfile "$SOURCE_AUTHFILE"); fi
  if [[ -n "${TARGET_AUTHFILE:-}" ]]; then
    dst_auth=(--dest-authfile "$TARGET_AUTHFILE")
    inspect_auth=(--authfile "$TARGET_AUTHFILE")
  fi
  for entry in "${IMAGES[@]}"; do
    name=${entry%%=*}
    source=${SOURCES[$name]}
    digest=${source##*@}
    target="$REGISTRY/rakuten-$name:$TAG"
    # --all keeps an image index whole (its digest is what was pushed); --preserve-digests makes
    # skopeo fail rather than write anything that would get another digest
    run skopeo copy --all --preserve-digests "${src_auth[@]}" "${dst_auth[@]}" \
      "docker://$source" "docker://$target"
    # the tag, read back from the registry: a manifest's digest is the sha256 of its bytes
    inspect=(skopeo inspect --raw "${inspect_auth[@]}" "docker://$target")
    if ((dry_run)); then
      echo "+ ${inspect[*]}"
      continue
    fi
    served="sha256:$("${inspect[@]}" | sha256sum | cut -d' ' -f1)"
    if [[ "$served" != "$digest" ]]; then
      echo "publish-images: $target resolves to $served, not the promoted $digest" >&2
      exit 1
    fi
    echo "publish-images: $target = $digest"
    lines+=("$name=$REGISTRY/rakuten-$name@$digest")
  done
  if ((!dry_run)) && [[ -n "$out" ]]; then
    printf '%s\n' "${lines[@]}" > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
}

"$mode"
