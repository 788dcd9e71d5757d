#!/usr/bin/env bash
# The Kubernetes Secrets the chart mounts (docs/kubernetes.md, "Secrets"), one per component:
# `rakuten-secrets ensure` generates the missing secrets of deploy/helm/secrets.toml into a local
# folder (master copies in its store/, kept: a re-run gives the same values, `rakuten-secrets
# rotate` a new one), then each other folder becomes the Secret <fullname>-<folder>, its file
# names the keys. The Secrets are applied (server-side, so no last-applied annotation copies
# their data) or printed; nothing else ever shows a secret value.
#
# rakuten-secrets runs from the repository's .venv when it has one (`make install`), else through
# `uv run --frozen`. kubectl is needed for --print too (client side only: no cluster is reached).
set -euo pipefail
umask 077

usage() {
    cat <<'EOF'
Usage: create-secrets.sh --namespace NS --postgres-host HOST --redis-host HOST (--apply | --print)
                         [--fullname NAME] [--dir DIR] [--literal SECRET:KEY=VALUE]...
                         [--external-databases]

  --fullname NAME         the release's fullname (default rakuten): Secrets are NAME-<component>
  --namespace NS          the namespace of the release
  --postgres-host HOST    the Postgres host (named in MLflow's basic_auth.ini)
  --redis-host HOST       the Redis host (named in serve's rakuten_redis_url)
  --dir DIR               the local folder of the secrets, kept between runs
                          (default: <repository>/.k8s-secrets/NS, mode 0700, gitignored)
  --literal SECRET:KEY=VALUE
                          add a non-secret key to the Secret of component SECRET (e.g. a URL
                          an operator's CRD reads from a Secret); the value is on command lines
  --external-databases    leave out the postgres and redis Secrets (values-dev.yaml only)
  --apply                 apply the Secrets with kubectl (server-side)
  --print                 print them as YAML instead (their data is the secrets, base64)
EOF
}

die() {
    printf 'create-secrets.sh: %s\n' "$1" >&2
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
catalogue=$here/secrets.toml
kubectl=${KUBECTL:-kubectl}

fullname=rakuten
namespace=
postgres_host=
redis_host=
dir=
mode=
external=false
literals=() # expanded as ${literals[@]+"${literals[@]}"}: bash 3.2 (macOS) and set -u

value_of() { # the value following option $1, refused when missing
    [[ $# -ge 2 && -n $2 && $2 != --* ]] || die "$1 needs a value (--help)"
    printf '%s' "$2"
}

while (($#)); do
    case $1 in
        --fullname) fullname=$(value_of "$@"); shift 2 ;;
        --namespace) namespace=$(value_of "$@"); shift 2 ;;
        --postgres-host) postgres_host=$(value_of "$@"); shift 2 ;;
        --redis-host) redis_host=$(value_of "$@"); shift 2 ;;
        --dir) dir=$(value_of "$@"); shift 2 ;;
        --literal) literals+=("$(value_of "$@")"); shift 2 ;;
        --external-databases) external=true; shift ;;
        --apply | --print)
            [[ -z $mode || $mode == "${1#--}" ]] || die "choose one of --apply and --print"
            mode=${1#--}
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (--help)" ;;
    esac
done

dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
host_name='^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$'
[[ -n $namespace ]] || die "--namespace is required"
[[ $namespace =~ $dns_label && ${#namespace} -le 63 ]] || die "--namespace: not a DNS label"
[[ $fullname =~ $dns_label ]] || die "--fullname: lower-case letters, digits and '-' only"
[[ -n $postgres_host ]] || die "--postgres-host is required (the Postgres the components use)"
[[ -n $redis_host ]] || die "--redis-host is required (the Redis serve uses)"
[[ $postgres_host =~ $host_name ]] || die "--postgres-host: not a host name"
[[ $redis_host =~ $host_name ]] || die "--redis-host: not a host name"
[[ -n $mode ]] || die "choose --apply or --print"
literal_form='^([a-z0-9-]+):([-._A-Za-z0-9]+)=(.*)$'
for literal in ${literals[@]+"${literals[@]}"}; do
    [[ $literal =~ $literal_form ]] || die "--literal: expected SECRET:KEY=VALUE"
done

dir=${dir:-$repo/.k8s-secrets/$namespace}
# The folder's component folders are made again at each run (so a file the catalogue no longer
# lists never reaches a Secret); refuse to empty a folder this script did not make.
if [[ -d $dir && -n $(ls -A "$dir") && ! -d $dir/store ]]; then
    die "$dir is not empty and has no store/: not a folder of this script (--dir)"
fi
mkdir -p "$dir"
chmod 0700 "$dir"
find "$dir" -mindepth 1 -maxdepth 1 ! -name store -exec rm -rf -- {} +

if [[ -x $repo/.venv/bin/rakuten-secrets ]]; then
    secrets_cli=("$repo/.venv/bin/rakuten-secrets")
else
    secrets_cli=(uv run --frozen --project "$repo" rakuten-secrets)
fi
K8S_POSTGRES_HOST=$postgres_host K8S_REDIS_HOST=$redis_host K8S_FULLNAME=$fullname \
    K8S_NAMESPACE=$namespace "${secrets_cli[@]}" ensure \
    --catalogue "$catalogue" --root "$dir" --app-uid "$(id -u)" >&2

components=()
for path in "$dir"/*/; do
    component=$(basename "$path")
    case $component in
        store) continue ;;
        postgres | redis) [[ $external == false ]] || continue ;;
    esac
    components+=("$component")
done

for literal in ${literals[@]+"${literals[@]}"}; do
    [[ $literal =~ $literal_form ]]
    component=${BASH_REMATCH[1]} key=${BASH_REMATCH[2]}
    [[ " ${components[*]} " == *" $component "* ]] || die "--literal: no Secret for '$component'"
    [[ ! -e $dir/$component/$key ]] || die "--literal: $component already has a key '$key'"
done

for component in "${components[@]}"; do
    name=$fullname-$component
    args=(create secret generic "$name" "--from-file=$dir/$component" --namespace "$namespace")
    for literal in ${literals[@]+"${literals[@]}"}; do
        [[ $literal =~ $literal_form ]]
        if [[ ${BASH_REMATCH[1]} == "$component" ]]; then
            args+=("--from-literal=${BASH_REMATCH[2]}=${BASH_REMATCH[3]}")
        fi
    done
    manifest=$("$kubectl" "${args[@]}" --dry-run=client -o yaml \
        | "$kubectl" label --local -f - -o yaml \
            app.kubernetes.io/part-of=rakuten "app.kubernetes.io/component=$component")
    if [[ $mode == print ]]; then
        printf -- '---\n%s\n' "$manifest"
    else
        printf '%s\n' "$manifest" | "$kubectl" apply --server-side --force-conflicts \
            --field-manager=rakuten-create-secrets -f -
    fi
done
done_verb=printed
[[ $mode == print ]] || done_verb=applied
printf 'create-secrets.sh: %d Secrets %s in namespace %s (files in %s)\n' \
    "${#components[@]}" "$done_verb" "$namespace" "$dir" >&2
