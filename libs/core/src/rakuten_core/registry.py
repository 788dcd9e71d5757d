"""From a model reference to a bundle directory: local paths and MLflow URIs alike.

Serving and batch prediction accept either a bundle directory (``models/current``) or an MLflow
URI such as ``models:/rakuten-multimodal@champion`` or ``runs:/<run_id>/model``. The training
service logs each bundle as an MLflow pyfunc model whose artifacts hold the bundle directory, so
a downloaded model version looks like::

    <download>/MLmodel
    <download>/artifacts/<bundle>/model.keras
    <download>/artifacts/<bundle>/bundle.json

:func:`resolve_bundle` downloads (MLflow is imported lazily, only for URIs) and returns the
directory that holds ``bundle.json`` and ``model.keras``, ready for
:func:`rakuten_core.bundle.load_bundle`. :func:`resolve_metadata` downloads ``bundle.json``
alone, for readers of the metadata (the monitor's drift reference).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rakuten_core.bundle import METADATA_FILE, MODEL_FILE
from rakuten_core.errors import BundleError, ModelUnavailableError

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_mlflow_uri(reference: str) -> bool:
    """True for ``models:/...``, ``runs:/...`` and ``mlflow-artifacts:/...`` references."""
    return reference.startswith(MLFLOW_SCHEMES)


def find_bundle_dir(root: str | Path) -> Path:
    """The shallowest directory under ``root`` (itself included) holding a complete bundle."""
    base = Path(root)
    candidates = [base] if (base / METADATA_FILE).is_file() else []
    candidates += sorted(
        (p.parent for p in base.rglob(METADATA_FILE)), key=lambda p: (len(p.parts), str(p))
    )
    for folder in candidates:
        if (folder / MODEL_FILE).is_file():
            return folder
    raise BundleError(f"no {METADATA_FILE} + {MODEL_FILE} bundle under {base}")


def resolve_bundle(
    reference: str | Path,
    *,
    dst: str | Path | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """Return a local bundle directory for a path or an MLflow model URI.

    Args:
        reference: a bundle directory, or ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
            ``runs:/<run_id>/<path>``.
        dst: where to download an MLflow model (a new temporary directory by default).
        tracking_uri: MLflow tracking/registry URI; ``MLFLOW_TRACKING_URI`` (or MLflow's own
            default) when ``None``.

    Raises:
        BundleError: the path or the downloaded model holds no bundle.
        ModelUnavailableError: MLflow is not installed, or the model could not be downloaded
            (unknown name or alias, unreachable server).
    """
    ref = str(reference)
    if not is_mlflow_uri(ref):
        return find_bundle_dir(ref)
    mlflow, target = _mlflow_and_target(ref, dst)
    try:
        source = _version_source(ref, tracking_uri) if tracking_uri is not None else ref
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(target), tracking_uri=tracking_uri
        )
    except Exception as exc:  # mlflow raises MlflowException, OSError, requests errors, ...
        raise ModelUnavailableError(f"could not download {ref}: {exc}") from exc
    return find_bundle_dir(local)


def resolve_metadata(
    reference: str | Path,
    *,
    dst: str | Path | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """A local directory holding the ``bundle.json`` of ``reference``, for
    :func:`rakuten_core.bundle.read_metadata`; for an MLflow URI only that file is downloaded
    (the model files are the bulk of a bundle: tens of MB).

    Raises:
        BundleError: the path or the MLflow model holds no ``bundle.json``.
        ModelUnavailableError: as :func:`resolve_bundle`.
    """
    ref = str(reference)
    if not is_mlflow_uri(ref):
        return find_bundle_dir(ref)
    mlflow, target = _mlflow_and_target(ref, dst)
    try:
        source = (_version_source(ref, tracking_uri) if tracking_uri is not None else ref).rstrip(
            "/"
        )
        found = _find_metadata(mlflow, source, tracking_uri)
        if found is None:
            raise BundleError(f"no {METADATA_FILE} in the artifacts of {ref}")
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source}/{found}", dst_path=str(target), tracking_uri=tracking_uri
        )
    except BundleError:
        raise
    except Exception as exc:  # mlflow raises MlflowException, OSError, requests errors, ...
        raise ModelUnavailableError(f"could not download {ref}: {exc}") from exc
    return Path(local).parent


def _mlflow_and_target(ref: str, dst: str | Path | None) -> tuple[Any, Path]:
    """MLflow (imported here: optional and heavy) and the download folder, created."""
    try:
        import mlflow  # noqa: PLC0415  (not a dependency of core; seconds to import)
    except ImportError:  # pragma: no cover  (every service that resolves URIs installs mlflow)
        raise ModelUnavailableError(f"{ref} needs mlflow installed") from None
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="rakuten-bundle-"))
    target.mkdir(parents=True, exist_ok=True)
    return mlflow, target


def _find_metadata(mlflow: Any, source: str, tracking_uri: str | None) -> str | None:
    """The shallowest ``bundle.json`` under ``source``, as a path relative to it, by listing
    folders breadth first (a pyfunc model keeps it in ``artifacts/<bundle>/``)."""
    level = [""]
    for _ in range(4):
        deeper = []
        for folder in level:
            uri = f"{source}/{folder}" if folder else source
            listed = mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
            for info in sorted(listed, key=lambda i: str(i.path)):
                name = str(info.path).rstrip("/").rsplit("/", 1)[-1]  # listing paths vary
                path = f"{folder}/{name}" if folder else name
                if not info.is_dir and name == METADATA_FILE:
                    return path
                if info.is_dir:
                    deeper.append(path)
        level = deeper
    return None


def _version_source(ref: str, tracking_uri: str) -> str:
    """Where a ``models:/`` version's files are, looked up in ``tracking_uri``'s registry.

    MLflow resolves a ``models:/`` URI in its process-wide registry whatever tracking URI the
    download is given, so the version is looked up here with an explicit client.
    """
    if not ref.startswith("models:/"):
        return ref
    from mlflow import MlflowClient  # noqa: PLC0415  (not a dependency of core; seconds to import)

    name, version = registry_version(ref, tracking_uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_download_uri(name, version))


def registry_version(ref: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``(name, version)`` a ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` names now.

    An alias is looked up in the registry (it moves on a promotion); a version is returned as is.

    Raises:
        ValueError: ``ref`` is not a ``models:/`` URI.
        mlflow.exceptions.MlflowException: unknown name or alias, unreachable registry.
    """
    if not ref.startswith("models:/"):
        raise ValueError(f"not a models:/ URI: {ref}")
    name_ref = ref.removeprefix("models:/").strip("/")
    if "@" not in name_ref:
        name, _, version = name_ref.rpartition("/")
        return name, version
    from mlflow import MlflowClient  # noqa: PLC0415  (not a dependency of core; seconds to import)

    name, alias = name_ref.split("@", 1)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return name, str(client.get_model_version_by_alias(name, alias).version)
