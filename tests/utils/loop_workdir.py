"""A throw-away checkout of the project for the retraining loop: DVC runs its real stages there.

The DAG runs ``dvc repro`` in ``RAKUTEN_LOOP_WORKDIR``; the stages call the workspace's CLIs
(``.venv/bin``), and DVC hashes the code folders the stages depend on, so those are copied in
beside ``dvc.yaml``, a ``params.yaml`` with small sizes and a git repository DVC needs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.utils.paths import REPO_ROOT

_COPIED = ("dvc.yaml", ".dvcignore", ".dvc/config", "scripts", "libs/core/src")
_SERVICES = ("data", "train", "predict")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def make_workdir(root: Path, params: dict[str, Any]) -> Path:
    """``root`` as a git repository holding the pipeline, with ``params`` as its params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for rel in _COPIED:
        source, target = REPO_ROOT / rel, root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_IGNORED)
        else:
            shutil.copy2(source, target)
    for service in _SERVICES:
        shutil.copytree(
            REPO_ROOT / "services" / service / "src", root / "services" / service / "src",
            ignore=_IGNORED,
        )  # fmt: skip
    write_params(root, params)
    (root / ".gitignore").write_text("/data/\n/models/\n/reports/\n/logs/\n", encoding="utf-8")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=60)
    return root


def write_params(root: Path, params: dict[str, Any]) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def loop_params(*, train: dict[str, Any], gate: dict[str, Any], rows: int = 300) -> dict[str, Any]:
    """params.yaml of the project with the offline sample of ``rows`` rows and small models."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update({"source": "sample", "sample_train_rows": rows, "sample_test_rows": 10})
    params["prepare"].update({"val_size": 0.15, "test_size": 0.2})
    section = params["train"]
    for dotted, value in train.items():
        node = section
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    params["gate"].update(gate)
    return params
