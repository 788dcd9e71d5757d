#!/usr/bin/env bash
# The pipeline's working copy, set to the image's code before the scheduler starts (compose
# service airflow-scheduler). The root file system is read-only; the image holds the pipeline's
# checkout at /opt/rakuten/pipeline (a git repository of one commit), and the DAG's `dvc repro`
# writes beside the code it runs (dvc.lock, .dvc/cache, .dvc/tmp, models/, reports/, logs/), so
# it runs in a working copy on a volume (RAKUTEN_LOOP_WORKDIR, /opt/rakuten/project). At every
# start the copy's tracked files become exactly the image's commit: changed files replaced,
# removed ones deleted. What the pipeline wrote, untracked or git-ignored, stays.
#   bash pipeline-workdir.sh [SOURCE [WORKDIR]]
# (defaults: /opt/rakuten/pipeline and $RAKUTEN_LOOP_WORKDIR)
set -euo pipefail
source=${1:-/opt/rakuten/pipeline}
workdir=${2:-${RAKUTEN_LOOP_WORKDIR:?set RAKUTEN_LOOP_WORKDIR or pass the working copy}}
if [[ ! -f "$source/dvc.yaml" || ! -d "$source/.git" ]] \
  || ! git -C "$source" rev-parse -q --verify HEAD >/dev/null; then
  echo "pipeline-workdir: $source is not the pipeline's checkout (a git commit with dvc.yaml)" >&2
  exit 2
fi
git init -q "$workdir"  # a no-op on an existing copy
git -C "$workdir" fetch -q --no-tags "$source" HEAD
git -C "$workdir" reset -q --hard FETCH_HEAD
echo "pipeline-workdir: $workdir at $(git -C "$workdir" rev-parse --short HEAD) (from $source)"
