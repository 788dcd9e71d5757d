#!/usr/bin/env bash
# Re-pins the base images of docker-compose.prod.yml by digest: for each `<tag>@sha256:<digest>`
# there, pulls <tag> from its registry and writes the digest the registry serves now. Run it on
# a machine that reaches the registries, then review the diff (docs/security.md, "Supply chain").
#   bash scripts/pin-images.sh            # rewrite docker-compose.prod.yml
#   bash scripts/pin-images.sh --check    # exit 1 when a digest differs from the registry's
set -euo pipefail
cd "$(dirname "$0")/.."
file=docker-compose.prod.yml
check=false
[[ "${1:-}" == "--check" ]] && check=true
stale=0
for tag in $(grep -oE '[a-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}' "$file" | sed 's/@sha256:.*//' | sort -u); do
  docker pull --quiet "$tag" >/dev/null
  repo_digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$tag")
  digest=${repo_digest##*@}
  if ! grep -q "$tag@$digest" "$file"; then
    echo "$tag: now $digest"
    stale=1
    $check || sed -i -E "s#${tag//./\\.}@sha256:[0-9a-f]{64}#$tag@$digest#g" "$file"
  fi
done
if $check && [[ $stale -eq 1 ]]; then exit 1; fi
echo "$file: every base image pinned to the registry's digest"
