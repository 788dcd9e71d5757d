"""The served model's drift reference, read from its ``bundle.json`` without loading the model.

A local bundle directory is re-read when its ``bundle.json`` changes (a new champion copied to
``models/current``), so the monitor follows the model serve reloads. A ``models:/`` URI is
resolved through MLflow (lazily imported) once; restart the monitor after a promotion. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.bundle import METADATA_FILE, read_metadata
from rakuten_core.categories import CategoryIndex
from rakuten_core.drift import DriftReference, parse_reference
from rakuten_core.registry import is_mlflow_uri, resolve_bundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelReference:
    """What the monitor needs of a bundle: its identity, categories and drift reference."""

    model_name: str
    model_version: str
    categories: CategoryIndex
    drift: DriftReference


def read_reference(bundle_dir: str | Path) -> ModelReference:
    """The reference of the bundle in ``bundle_dir`` (only ``bundle.json`` is read).

    Raises:
        BundleError: no readable ``bundle.json``, or no drift reference in it.
    """
    meta = read_metadata(bundle_dir)
    return ModelReference(
        model_name=meta.model_name,
        model_version=meta.model_version,
        categories=CategoryIndex(meta.categories),
        drift=parse_reference(meta.reference),
    )


class ReferenceSource:
    """Loads the reference of ``spec`` and keeps it until the local bundle changes."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._reference: ModelReference | None = None
        self._stamp: float | None = None

    def get(self) -> ModelReference:
        """The current reference, (re)loaded when needed.

        Raises:
            BundleError: (or ModelUnavailableError) the bundle cannot be read or resolved; the
                reference loaded before, if any, is dropped only when the local file changed.
        """
        if is_mlflow_uri(self.spec):
            if self._reference is None:
                self._reference = read_reference(resolve_bundle(self.spec))
                logger.info("drift reference of %s loaded", self.spec)
            return self._reference
        meta_file = Path(self.spec) / METADATA_FILE
        stamp = meta_file.stat().st_mtime if meta_file.is_file() else None
        if self._reference is None or stamp != self._stamp:
            self._reference = None
            self._reference = read_reference(self.spec)
            self._stamp = stamp
            logger.info(
                "drift reference of %s %s loaded from %s",
                self._reference.model_name,
                self._reference.model_version,
                self.spec,
            )
        return self._reference
