"""MLflow: where runs go, the per-epoch callback, logging the bundle, registry and promotion.

Tracking URI: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``
(MLflow 3's own default: its model registry needs a database backend, the plain file store is
deprecated). For a local SQLite store, a new experiment keeps its artifacts next to the
database, in ``mlartifacts/`` (never in the working directory of whoever runs it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import keras
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from rakuten_core.registry import resolve_bundle
from rakuten_train import aliases, loop_registry
from rakuten_train.gate import fixed_split_check
from rakuten_train.gate_params import GateParams
from rakuten_train.loop_registry import version_with_fingerprint

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION = aliases.CHAMPION
CHALLENGER = aliases.CHALLENGER
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def tracking_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def setup(uri: str, experiment: str) -> str:
    """Point MLflow at ``uri`` and return the id of ``experiment`` (created when missing).

    A new experiment on a local SQLite store keeps its artifacts in ``mlartifacts/<experiment>``
    beside the database; on a tracking server the server chooses (``mlflow-artifacts:/`` when it
    serves artifacts), so no local path of this machine ends up in a shared server. Runs must be
    started with the returned id (``mlflow.start_run(experiment_id=...)``).
    """
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(unquote(uri[len("sqlite:///") :])).resolve()
        location = (db.parent / "mlartifacts" / experiment).as_uri()
    return str(client.create_experiment(experiment, artifact_location=location))


class MlflowEpochLogger(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Logs Keras' per-epoch metrics (loss, accuracy, val_*) to the active run."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if values:
            mlflow.log_metrics(values, step=epoch)


SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "designation"),
            ColSpec("string", "description", required=False),
            ColSpec("binary", "image", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec("long", "prdtypecode"),
            ColSpec("double", "probability"),
            ColSpec("string", "category"),
        ]
    ),
)


def log_bundle_model(bundle_dir: Path) -> str:
    """Log the bundle once, inside a pyfunc model (name ``model``); return the URI to register.

    The model's artifacts hold the bundle directory as it is (``artifacts/<bundle>/``), which is
    what :func:`rakuten_core.registry.resolve_bundle` finds after a download; a second plain copy
    under the run's artifacts would only double the store.
    """
    example = pd.DataFrame(
        {
            "designation": ["Piscine gonflable ronde 3 m", "Roman policier, livre de poche"],
            "description": ["Pompe et bâche incluses", ""],
        }
    )
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_FILE),
        artifacts={"bundle": str(bundle_dir)},
        signature=SIGNATURE,
        input_example=example,
    )
    return str(info.model_uri)


@dataclass(frozen=True)
class Promotion:
    """What happened to a newly registered version."""

    version: str
    promoted: bool
    reason: str
    champion_version: str | None = None
    champion_weighted_f1: float | None = None
    registered: bool = True  # False: an identical version existed, nothing was registered


def register_and_promote(
    model_uri: str,
    *,
    name: str,
    new_f1: float,
    test_rows: int,
    gate: GateParams,
    fingerprint: str,
    champion_score: Any,
) -> Promotion:
    """Register ``model_uri`` as ``challenger``; move ``champion`` to it if it wins.

    The rule is the gate's fixed-split check (:func:`rakuten_train.gate.fixed_split_check`,
    ``gate.test_margin``): strictly better than the champion by more than the margin. A model
    whose fingerprint a registered version already carries is not registered again: it is that
    version, and its promotion was decided when it was registered.

    ``champion_score(bundle_dir) -> float`` re-evaluates the current champion on the new run's
    test split, so both are compared on the same rows; a champion that cannot be downloaded or
    loaded is replaced (its failure is the reason given).
    """
    client = MlflowClient()
    existing = version_with_fingerprint(name, fingerprint)
    if existing is not None:
        reason = (
            f"identical to {name} v{existing} (same data, params and code; fingerprint "
            f"{fingerprint[:12]}): not registered again"
        )
        return Promotion(existing, False, reason, registered=False)
    version = str(mlflow.register_model(model_uri, name).version)
    client.set_model_version_tag(name, version, loop_registry.FINGERPRINT_TAG, fingerprint)
    client.set_registered_model_alias(name, CHALLENGER, version)
    champion_version: str | None = None
    champion_f1: float | None = None
    failure = ""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
        champion_version = str(current.version)
    except mlflow.exceptions.MlflowException:
        current = None
    if current is not None:
        try:
            champion_f1 = float(champion_score(resolve_bundle(f"models:/{name}@{CHAMPION}")))
        except Exception as exc:  # any failure to read the champion means it cannot compete
            failure = f"champion v{champion_version} could not be evaluated ({exc}); "
            logger.warning("%s", failure)
    check = fixed_split_check(new_f1, champion_f1, rows=test_rows, params=gate)
    promoted = check.passed
    reason = failure + ("promoted: " if promoted else "not promoted: ") + check.reason
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion", "champion" if promoted else "rejected")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.set_model_version_tag(name, version, "weighted_f1", f"{new_f1:.6f}")
    return Promotion(version, promoted, reason, champion_version, champion_f1)
