"""Where the model comes from: a local bundle directory or an MLflow ``models:/`` URI."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.bundle import METADATA_FILE
from rakuten_core.errors import BundleError, ModelUnavailableError

logger = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


@dataclass(frozen=True)
class ResolvedModel:
    """A bundle directory on local disk and the reference it was resolved from."""

    path: Path
    source: str
    registry_version: str | None = None


def is_mlflow_uri(spec: str) -> bool:
    return spec.startswith(MLFLOW_SCHEMES)


def _find_bundle_dir(root: Path) -> Path:
    """The shallowest directory under ``root`` holding a ``bundle.json``."""
    if (root / METADATA_FILE).is_file():
        return root
    found = sorted(root.rglob(METADATA_FILE), key=lambda p: len(p.parts))
    if not found:
        raise BundleError(f"no {METADATA_FILE} in the artifacts downloaded to {root}")
    return found[0].parent


def resolve_model(spec: str, *, download_dir: Path | None = None) -> ResolvedModel:
    """Turn ``--model`` into a local bundle directory, downloading it from MLflow if needed.

    MLflow URIs use the tracking/registry server of ``MLFLOW_TRACKING_URI`` (a local store when
    unset), exactly as the training service registers bundles.

    Raises:
        ModelUnavailableError: the path does not exist or MLflow cannot provide the model.
    """
    if not is_mlflow_uri(spec):
        path = Path(spec)
        if not path.is_dir():
            raise ModelUnavailableError(f"{path}: model bundle directory not found")
        return ResolvedModel(path, str(path))
    target = Path(download_dir or tempfile.mkdtemp(prefix="rakuten-predict-model-"))
    try:
        from rakuten_core import registry  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        registry = None
    if registry is not None and hasattr(registry, "download_bundle"):
        return ResolvedModel(Path(registry.download_bundle(spec, dst=target)), spec)
    import mlflow  # noqa: PLC0415  (heavy; only needed for registry URIs)

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(target))
    except Exception as exc:  # MlflowException, connection and permission errors alike
        raise ModelUnavailableError(f"cannot download {spec} from MLflow: {exc}") from exc
    logger.info("downloaded %s to %s", spec, local)
    return ResolvedModel(_find_bundle_dir(Path(local)), spec, _registry_version(spec))


def _registry_version(spec: str) -> str | None:
    """The registered version a ``models:/name@alias`` or ``models:/name/N`` URI points at."""
    if not spec.startswith("models:/"):
        return None
    ref = spec.removeprefix("models:/").strip("/")
    if "@" in ref:
        from mlflow import MlflowClient  # noqa: PLC0415

        name, alias = ref.split("@", 1)
        try:
            return str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except Exception:  # the download worked; the version is only informative
            logger.warning("could not read the version of %s", spec, exc_info=True)
            return None
    _, _, version = ref.rpartition("/")
    return version if version.isdigit() else None
