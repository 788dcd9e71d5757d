"""The served model's drift reference, read from its ``bundle.json`` without loading the model.

A local bundle directory is re-read when its ``bundle.json`` changes (a new champion copied to
``models/current``), so the monitor follows the model serve reloads. A ``models:/name@alias``
URI is looked up in the registry again every ``refresh_s`` (MLflow lazily imported): when the
alias moved (a promotion), the new version's reference replaces the old one. Other MLflow URIs
name one immutable model and are resolved once. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.bundle import METADATA_FILE, read_metadata
from rakuten_core.categories import CategoryIndex
from rakuten_core.drift import DriftReference, require_reference
from rakuten_core.errors import ModelUnavailableError
from rakuten_core.registry import is_mlflow_uri, registry_version, resolve_metadata

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
        drift=require_reference(meta.reference),
    )


class ReferenceSource:
    """Loads the reference of ``spec`` and keeps it until the model behind ``spec`` changes."""

    def __init__(
        self,
        spec: str,
        *,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.refresh_s = refresh_s
        self._clock = clock
        self._reference: ModelReference | None = None
        self._stamp: float | None = None
        self._version: str | None = None
        self._checked_at: float | None = None

    def get(self) -> ModelReference:
        """The current reference, (re)loaded when needed.

        Raises:
            BundleError: (or ModelUnavailableError) the bundle cannot be read or resolved; the
                reference loaded before, if any, is dropped only when the local file changed.
                A registry that cannot be reached keeps the reference loaded before.
        """
        if self.spec.startswith("models:/"):
            return self._from_registry()
        if is_mlflow_uri(self.spec):
            if self._reference is None:
                with tempfile.TemporaryDirectory(prefix="rakuten-reference-") as download:
                    self._reference = read_reference(resolve_metadata(self.spec, dst=download))
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

    def _from_registry(self) -> ModelReference:
        """A ``models:/`` reference: the version its alias names, looked up every ``refresh_s``."""
        now = self._clock()
        fresh = self._checked_at is not None and now - self._checked_at < self.refresh_s
        if self._reference is not None and fresh:
            return self._reference
        try:
            name, version = registry_version(self.spec)
        except Exception as exc:  # MlflowException, requests errors: the registry is away
            if self._reference is None:
                raise ModelUnavailableError(f"could not look up {self.spec}: {exc}") from exc
            logger.warning("could not look up %s, keeping version %s", self.spec, self._version)
            self._checked_at = now
            return self._reference
        self._checked_at = now
        if self._reference is None or version != self._version:
            with tempfile.TemporaryDirectory(prefix="rakuten-reference-") as download:
                folder = resolve_metadata(f"models:/{name}/{version}", dst=download)
                reference = read_reference(folder)  # bundle.json alone was downloaded
            previous, self._reference, self._version = self._version, reference, version
            logger.info(
                "drift reference of %s: version %s loaded (was %s)", self.spec, version, previous
            )
        return self._reference
