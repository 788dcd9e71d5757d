"""Where the served model comes from: a bundle directory or an MLflow ``models:/`` URI.

``rakuten_core.registry`` (written by the training service) is used when it provides
``download_bundle``; otherwise MLflow's artifact API downloads the registered model, and the
bundle is the shallowest folder holding a ``bundle.json``.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path

from rakuten_core.bundle import METADATA_FILE
from rakuten_core.errors import BundleError, ModelUnavailableError

logger = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_mlflow_uri(spec: str) -> bool:
    return spec.startswith(MLFLOW_SCHEMES)


def find_bundle_dir(root: Path) -> Path:
    if (root / METADATA_FILE).is_file():
        return root
    found = sorted(root.rglob(METADATA_FILE), key=lambda p: len(p.parts))
    if not found:
        raise BundleError(f"no {METADATA_FILE} in {root}")
    return found[0].parent


def resolve_bundle_dir(spec: str, *, cache_dir: Path) -> Path:
    """A local bundle directory for ``spec`` (downloaded into ``cache_dir`` for MLflow URIs).

    Raises:
        ModelUnavailableError: the directory does not exist or MLflow cannot provide it.
    """
    if not is_mlflow_uri(spec):
        path = Path(spec)
        if not path.is_dir():
            raise ModelUnavailableError(f"{path}: model bundle directory not found")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="bundle-", dir=cache_dir))
    try:
        registry = importlib.import_module("rakuten_core.registry")
    except ImportError:
        registry = None
    download = getattr(registry, "download_bundle", None)
    try:
        if download is not None:
            return find_bundle_dir(Path(download(spec, dst=target)))
        import mlflow  # noqa: PLC0415  (heavy; only for registry URIs)

        local = mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(target))
    except BundleError:
        raise
    except Exception as exc:  # MlflowException, connection and permission errors alike
        raise ModelUnavailableError(f"cannot download {spec} from MLflow: {exc}") from exc
    logger.info("downloaded %s to %s", spec, local)
    return find_bundle_dir(Path(local))
