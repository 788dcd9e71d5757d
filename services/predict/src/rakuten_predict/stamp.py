"""When a batch run may reuse its last output: the predict job's stamp.

The compose ``predict`` job runs at every ``docker compose up``; with ``--reuse`` it predicts
only when the model it would use, its inputs or its code changed since the output was written
(the rule of :mod:`rakuten_core.job_stamp`). The model counts by what it is, not by how it is
named: ``models:/name@champion`` is looked up to its version, so a promotion means a new run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rakuten_core.bundle import read_metadata
from rakuten_core.errors import BundleError
from rakuten_core.job_stamp import JobStamp, make_stamp
from rakuten_core.registry import is_mlflow_uri, registry_version
from rakuten_predict.runner import RunConfig

PACKAGES = ("rakuten_core", "rakuten_predict")


def predict_stamp(config: RunConfig, *, model: str, tracking_uri: str | None) -> JobStamp:
    """What the predictions of ``config`` are made from (the model resolved to a version)."""
    return make_stamp(
        "predict",
        {
            "model": model_identity(model, tracking_uri),
            "csv": file_digest(config.csv),
            "labels": file_digest(config.labels) if config.labels is not None else "none",
            "images": folder_digest(config.images),
        },
        packages=PACKAGES,
    )


def model_identity(model: str, tracking_uri: str | None) -> str:
    """``models:/name/N`` for a registry URI (its alias followed), the bundle's own version for
    a folder; other MLflow URIs (``runs:/``) name one artifact already.

    Raises:
        mlflow.exceptions.MlflowException: the registry cannot say (unknown name or alias).
    """
    if model.startswith("models:/"):
        name, version = registry_version(model, tracking_uri)
        return f"models:/{name}/{version}"
    if is_mlflow_uri(model):
        return model
    try:
        metadata = read_metadata(model)
    except (BundleError, OSError):
        return f"unreadable:{os.urandom(8).hex()}"  # never current: the run says what is wrong
    return f"{metadata.model_name}:{metadata.model_version}:{metadata.mlflow_run_id or ''}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """The names, sizes and modification times of ``folder``'s files (not their bytes: the real
    test set is gigabytes of JPEGs, and a replaced image changes its size or time)."""
    digest = hashlib.sha256()
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_file():
                info = entry.stat()
                digest.update(f"{entry.name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()
