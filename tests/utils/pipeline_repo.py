"""A throw-away copy of the repository in which the real DVC pipeline runs.

Shared by the DVC pipeline test and ``bench/bundle_footprint.py``: the copy holds the files git
sees (tracked + untracked-not-ignored, like a fresh clone of the working tree), becomes its own
git repository, and runs the workspace's CLIs through ``PATH``. The copy's own sources come first
on ``PYTHONPATH``, so the code that runs is the copy's even though the ``.venv`` installs the
workspace packages in editable mode (a copy of an older commit runs that commit's code).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.utils.paths import REPO_ROOT

SOURCE_DIRS = ("libs/core/src", "services/data/src", "services/train/src", "services/predict/src")


def pipeline_env(repo: Path) -> dict[str, str]:
    """Environment of a run in ``repo``: no MLflow/RAKUTEN/DVC settings or user config leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAKUTEN_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(str(repo / d) for d in SOURCE_DIRS)
    env["HOME"] = str(repo.parent / "home")  # no user-level dvc/git config leaks in
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(
        GIT_AUTHOR_NAME="pipeline-test",
        GIT_AUTHOR_EMAIL="pipeline-test@example.invalid",
        GIT_COMMITTER_NAME="pipeline-test",
        GIT_COMMITTER_EMAIL="pipeline-test@example.invalid",
    )
    return env


def run_in(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``repo``; raises ``AssertionError`` with the output when it fails."""
    result = subprocess.run(
        list(args),
        cwd=repo,
        env=pipeline_env(repo),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def copy_repository(target: Path, source: Path = REPO_ROOT) -> None:
    """Copy the files git sees in ``source`` (tracked + untracked-not-ignored) into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = source / name
        if path.is_file():  # tracked files deleted in the working tree are skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def set_params(repo: Path, **values: object) -> None:
    """Edit ``params.yaml`` as a user would: ``set_params(repo, **{"train.epochs": 1})``."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in values.items():
        section, key = dotted.split(".", 1)
        if not isinstance(params.get(section), dict):
            params[section] = {}
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_pipeline_repo(repo: Path, source: Path = REPO_ROOT, **params: object) -> Path:
    """Copy ``source`` into ``repo`` (created), apply ``params`` and commit it as a git repo."""
    repo.mkdir(parents=True)
    (repo.parent / "home").mkdir(exist_ok=True)
    copy_repository(repo, source)
    if params:
        set_params(repo, **params)
    run_in(repo, "git", "init", "-q")
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-q", "-m", "copy of the working tree")
    return repo
