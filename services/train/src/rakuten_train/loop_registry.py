"""The registry steps of the retraining loop: register a challenger, promote it.

Between them runs the gate (:mod:`rakuten_train.gate_run`). Both steps name versions
explicitly, so two loops racing cannot promote a model the gate never saw: ``promote`` refuses
when the ``champion`` alias moved since the gate read it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rakuten_core.bundle import read_metadata
from rakuten_core.errors import InvalidInputError
from rakuten_train.aliases import CHALLENGER, CHAMPION

logger = logging.getLogger(__name__)
MODEL_URI_TAG = "model_uri"  # set by training on its run: the logged model to register
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # as rakuten_train.tracking (no Keras import here)
FINGERPRINT_TAG = "train_fingerprint"  # a version's train job stamp (rakuten_core.job_stamp)


def tracking_uri(explicit: str | None = None) -> str:
    """``explicit``, else ``MLFLOW_TRACKING_URI``, else the local store training uses."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass(frozen=True)
class Registered:
    """A challenger in the registry."""

    model_name: str
    version: str
    run_id: str
    model_version: str  # bundle.json's, what serve reports
    reused: bool  # the run's model was registered already (pipeline up to date)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def version_with_fingerprint(name: str, fingerprint: str) -> str | None:
    """The registered version of ``name`` trained from exactly these inputs and code, if any.

    The fingerprint is the train job's stamp (:mod:`rakuten_core.job_stamp`), kept as the tag
    ``train_fingerprint`` of each version it registers; the newest such version is returned.
    """
    client = MlflowClient()  # the tracking and registry URIs set by the caller
    try:
        found = client.search_model_versions(
            f"name = '{name}' and tags.{FINGERPRINT_TAG} = '{fingerprint}'"
        )
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc):  # no such registered model yet
            return None
        raise
    versions = sorted((int(v.version) for v in found), reverse=True)
    return str(versions[0]) if versions else None


def register_challenger(bundle: Path, *, name: str, tracking_uri: str) -> Registered:
    """Register the MLflow model of ``bundle``'s run and point ``challenger`` at it.

    Idempotent: when the pipeline found nothing to retrain, the bundle's run already has a
    version, which is reused instead of registering a duplicate.

    Raises:
        InvalidInputError: the bundle was trained without MLflow, or its run is unknown.
    """
    meta = read_metadata(bundle)
    run_id = meta.mlflow_run_id
    if not run_id:
        raise InvalidInputError(f"{bundle} was trained without MLflow: nothing to register")
    # MLflow resolves a logged model's source through its process-wide tracking URI: point it
    # at the same store (one command is one process)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise InvalidInputError(f"run {run_id} of {bundle} not found: {exc.message}") from None
    existing = _versions_of_run(client, name, run_id)
    reused = bool(existing)
    if existing:
        version = existing[0]
    else:
        source = run.data.tags.get(MODEL_URI_TAG) or f"runs:/{run_id}/model"
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        # MLflow 3 logs the model as a LoggedModel (models:/m-<id>): the version names it
        model_id = source.removeprefix("models:/") if source.startswith("models:/m-") else None
        created = client.create_model_version(name, source=source, run_id=run_id, model_id=model_id)
        version = str(created.version)
        client.set_model_version_tag(name, version, "promotion", "pending")
    client.set_registered_model_alias(name, CHALLENGER, version)
    logger.info("%s v%s (run %s) is the challenger%s", name, version, run_id,
                " (already registered)" if reused else "")  # fmt: skip
    return Registered(name, version, run_id, meta.model_version, reused)


def _versions_of_run(client: MlflowClient, name: str, run_id: str) -> list[str]:
    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        return []
    return sorted((str(v.version) for v in found), key=int)


def current_champion(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def promote(
    *, name: str, version: str, expect_champion: str | None, tracking_uri: str, reason: str
) -> str | None:
    """Move ``champion`` to ``version``; returns the previous champion's version.

    ``expect_champion`` is the champion the gate compared with ("" or None: none); a different
    champion now means another run promoted meanwhile, and this one refuses.

    Raises:
        InvalidInputError: unknown version, or the champion moved since the gate.
    """
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise InvalidInputError(f"{name} v{version} not found: {exc.message}") from None
    previous = current_champion(client, name)
    if (previous or None) != (expect_champion or None):
        raise InvalidInputError(
            f"the champion moved since the gate (gate saw v{expect_champion or 'none'}, now "
            f"v{previous or 'none'}): not promoting {name} v{version}"
        )
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion", "champion")
    client.set_model_version_tag(name, version, "promotion_reason", reason[:5000])
    if previous is not None:
        client.set_model_version_tag(name, previous, "replaced_by", version)
    logger.info("%s v%s is the champion (was v%s)", name, version, previous or "none")
    return previous
