"""Training only when something changed: the train job's stamp and what it may reuse.

The compose ``train`` job runs at every ``docker compose up``; with ``--reuse`` it trains only
when no model was made yet from the same prepared data, raw images, params and code (the rule of
:mod:`rakuten_core.job_stamp`). With the registry, "made" means a registered version carries the
fingerprint (tag ``train_fingerprint``), so a new MLflow volume means training again, and a
bundle folder that was lost is downloaded from that version.

Nothing here imports TensorFlow (about 10 s of a restart on 2 cores): the CLI asks this module
first and imports the training code only when it has to train.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from rakuten_core.bundle import BundleMetadata, read_metadata
from rakuten_core.dataset import REPORT_FILE
from rakuten_core.job_stamp import JobStamp, is_current, make_stamp, upstream, write_stamp
from rakuten_core.registry import resolve_bundle
from rakuten_train import loop_registry
from rakuten_train.params import TrainParams

logger = logging.getLogger(__name__)

PACKAGES = ("rakuten_core", "rakuten_train")  # the code whose change makes a new model
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "keras")  # what shapes the weights


def train_stamp(*, data: Path, raw: Path, params: TrainParams) -> JobStamp:
    """What a model is made from: the prepared splits, the raw images, the params, the code."""
    return make_stamp(
        "train",
        {
            "processed": upstream(data),
            "raw": upstream(raw),
            "params": params.model_dump(mode="json"),
        },
        packages=PACKAGES,
        distributions=DISTRIBUTIONS,
    )


def train_rows(processed: Path) -> int:
    """Rows of the train split, from ``data_report.json`` (0 when it cannot be read)."""
    try:
        report = json.loads((processed / REPORT_FILE).read_text(encoding="utf-8"))
        return int(report["splits"]["train"]["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@dataclass(frozen=True)
class Reused:
    """A model that needs no training: what the job reports instead of a new run."""

    version: str  # its registered version ("local" without the registry)
    metadata: BundleMetadata
    train_rows: int
    stamp: JobStamp


def reuse_model(
    *,
    data: Path,
    raw: Path,
    params: TrainParams,
    bundle_out: Path,
    registry: bool,
    tracking_uri: str | None,
) -> Reused | None:
    """The model already made from these inputs and code, in ``bundle_out``; else None."""
    stamp = train_stamp(data=data, raw=raw, params=params)
    if registry:
        uri = loop_registry.tracking_uri(tracking_uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    version = reusable_model(
        stamp, model_name=params.registry.model_name, bundle_out=bundle_out, registry=registry
    )
    if version is None:
        return None
    return Reused(version, read_metadata(bundle_out), train_rows(data), stamp)


def reusable_model(
    stamp: JobStamp, *, model_name: str, bundle_out: Path, registry: bool
) -> str | None:
    """The model already made for ``stamp``: its registered version ("local" without the
    registry), with ``bundle_out`` holding it on return; None when training must run.

    The registry (MLflow set up by the caller) must hold a version with the fingerprint; the
    bundle folder is taken as it is when its stamp matches, else downloaded from that version.
    """
    version = None
    if registry:
        version = loop_registry.version_with_fingerprint(model_name, stamp.fingerprint)
        if version is None:
            return None
    if not is_current(bundle_out, stamp):
        if version is None:
            return None
        _restore_bundle(f"models:/{model_name}/{version}", bundle_out)
        write_stamp(bundle_out, stamp)
    logger.info("model up to date: %s (train %s)", version or bundle_out, stamp.short())
    return version or "local"


def _restore_bundle(reference: str, bundle_out: Path) -> None:
    """Download ``reference``'s bundle and put it at ``bundle_out`` (replacing what was there)."""
    with tempfile.TemporaryDirectory(prefix="rakuten-restore-") as tmp:
        found = resolve_bundle(reference, dst=tmp)
        staged = bundle_out.with_name(f".{bundle_out.name}.restoring")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(found, staged)
        shutil.rmtree(bundle_out, ignore_errors=True)
        staged.rename(bundle_out)
    logger.info("restored %s from %s", bundle_out, reference)
