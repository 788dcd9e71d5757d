"""Where the model comes from: a local bundle directory or an MLflow ``models:/`` URI.

Downloading and locating the bundle inside MLflow artifacts is the contract package's job
(:func:`rakuten_core.registry.resolve_bundle`, shared with serving); this module adds what a
batch run reports about it: the reference it was given and the registry version it resolved to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.errors import ModelUnavailableError
from rakuten_core.registry import is_mlflow_uri, registry_version, resolve_bundle

logger = logging.getLogger(__name__)

__all__ = ["ResolvedModel", "is_mlflow_uri", "resolve_model"]


@dataclass(frozen=True)
class ResolvedModel:
    """A bundle directory on local disk and the reference it was resolved from."""

    path: Path
    source: str
    registry_version: str | None = None


def resolve_model(
    spec: str, *, download_dir: Path | None = None, tracking_uri: str | None = None
) -> ResolvedModel:
    """Turn ``--model`` into a local bundle directory, downloading it from MLflow if needed.

    MLflow URIs use the tracking/registry server ``tracking_uri`` (the settings'
    ``MLFLOW_TRACKING_URI``; MLflow's own default when ``None``), exactly as the training service
    registers bundles.

    Raises:
        ModelUnavailableError: the path does not exist, holds no bundle, or MLflow cannot
            provide the model.
    """
    if not is_mlflow_uri(spec):
        path = Path(spec)
        if not path.is_dir():
            raise ModelUnavailableError(f"{path}: model bundle directory not found")
        return ResolvedModel(resolve_bundle(path), spec)
    path = resolve_bundle(spec, dst=download_dir, tracking_uri=tracking_uri)
    logger.info("resolved %s to %s", spec, path)
    return ResolvedModel(path, spec, _registry_version(spec, tracking_uri))


def _registry_version(spec: str, tracking_uri: str | None = None) -> str | None:
    """The registered version a ``models:/name@alias`` or ``models:/name/N`` URI points at."""
    if not spec.startswith("models:/"):
        return None
    try:
        _, version = registry_version(spec, tracking_uri)
    except Exception:  # the download worked; the version is only informative
        logger.warning("could not read the version of %s", spec, exc_info=True)
        return None
    return version if version.isdigit() else None
