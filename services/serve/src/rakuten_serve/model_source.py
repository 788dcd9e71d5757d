"""Where the served model comes from: a bundle directory or an MLflow URI.

Resolution is :func:`rakuten_core.registry.resolve_bundle` (shared with batch prediction):
``models:/name@alias``, ``models:/name/version`` and ``runs:/...`` are downloaded from the
registry of ``MLFLOW_TRACKING_URI`` into a fresh folder under ``RAKUTEN_MODEL_CACHE_DIR``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from rakuten_core.registry import is_mlflow_uri, resolve_bundle

logger = logging.getLogger(__name__)


def resolve_bundle_dir(spec: str, *, cache_dir: Path) -> Path:
    """A local bundle directory for ``spec``.

    Raises:
        ModelUnavailableError: (or ``BundleError``) no bundle there, or MLflow cannot provide it.
    """
    if not is_mlflow_uri(spec):
        return resolve_bundle(spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="bundle-", dir=cache_dir))
    path = resolve_bundle(spec, dst=target)
    logger.info("downloaded %s to %s", spec, path)
    return path
