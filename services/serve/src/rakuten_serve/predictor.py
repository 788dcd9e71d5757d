"""The served model: preprocessing with the shared contract, batched inference, hot swap.

:class:`Predictor` holds the current :class:`LoadedModel`; a reload builds and warms up a new
one off the request path and swaps it in one assignment, so in-flight batches finish on the
model they started with and a failed reload leaves the old model serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rakuten_core.bundle import Bundle, BundleMetadata, load_bundle
from rakuten_core.drift import InputFeatures, input_features
from rakuten_core.errors import InputTooLargeError, InvalidInputError, ModelUnavailableError
from rakuten_core.image import ImageArray, decode_image
from rakuten_core.inputs import model_inputs
from rakuten_core.schema import ImageLimits
from rakuten_core.text import product_text
from rakuten_serve import heap
from rakuten_serve.model_source import resolve_bundle_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedInput:
    """One product, preprocessed exactly as in training and batch prediction."""

    text: str
    image: ImageArray | None
    image_sha256: str | None = None
    image_bytes: int | None = None
    # drift features of the input, computed with it (off the event loop) for the record
    features: InputFeatures | None = None


@dataclass(frozen=True)
class ClassScore:
    prdtypecode: int
    name_fr: str
    name_en: str
    probability: float


@dataclass(frozen=True)
class PredictionResult:
    top: list[ClassScore]
    model_name: str
    model_version: str
    batch_size: int


@dataclass
class LoadedModel:
    """A loaded bundle plus where it came from."""

    bundle: Bundle
    source: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def metadata(self) -> BundleMetadata:
        return self.bundle.metadata

    def predict(self, items: Sequence[PreparedInput], *, top_k: int) -> list[list[ClassScore]]:
        inputs = model_inputs(
            [it.text for it in items], [it.image for it in items], image_size=self.image_size
        )
        probs = self.bundle.predict_proba(inputs)
        k = min(top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        categories = self.bundle.categories.categories
        return [
            [
                ClassScore(
                    prdtypecode=categories[j].code,
                    name_fr=categories[j].name_fr,
                    name_en=categories[j].name_en,
                    probability=float(row[j]),
                )
                for j in idx
            ]
            for row, idx in zip(probs, order, strict=True)
        ]

    @property
    def image_size(self) -> int:
        return self.bundle.image_size

    def warm_up(self, max_batch: int) -> float:
        """Run the model on a batch of 1, then of ``max_batch``; returns seconds.

        The first calls of an ONNX Runtime session allocate its buffers for the shapes seen;
        a batch of 1 and one of ``max_batch`` take that cost (and any failure of the model on
        real shapes) off the first requests.
        """
        start = time.perf_counter()
        blank = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        for size in sorted({1, max_batch}):
            items = [
                PreparedInput("warm up produit", blank if i % 2 else None) for i in range(size)
            ]
            self.predict(items, top_k=1)
        return time.perf_counter() - start


def load_model(spec: str, *, cache_dir: Path, warm_up_batch: int = 1) -> LoadedModel:
    """Resolve, load and warm up the model at ``spec`` (path or ``models:/...``).

    Raises:
        ModelUnavailableError: (or its subclass ``BundleError``) whenever the model is unusable,
            including a model that fails on the warm-up batch.
    """
    started = time.perf_counter()
    path = resolve_bundle_dir(spec, cache_dir=cache_dir)
    resolved = time.perf_counter()
    loaded = LoadedModel(load_bundle(path), spec)
    read = time.perf_counter()
    try:
        seconds = loaded.warm_up(warm_up_batch)
    except Exception as exc:  # a model that loads but cannot predict is unusable
        raise ModelUnavailableError(f"model at {spec} failed its warm-up: {exc}") from exc
    logger.info(
        "model %s %s loaded from %s, %s runtime (resolve %.2fs, load %.2fs, warm-up %.2fs)",
        loaded.metadata.model_name,
        loaded.metadata.model_version,
        spec,
        loaded.bundle.runtime_name,
        resolved - started,
        read - resolved,
        seconds,
    )
    return loaded


class Predictor:
    """The model currently served; thread-safe to call and to swap."""

    def __init__(self, model: LoadedModel | None = None, *, top_k: int = 5) -> None:
        self._model = model
        self._top_k = top_k
        self._call_lock = threading.Lock()
        self._reload_lock = threading.RLock()  # reload() holds it through reload_with()

    @property
    def model(self) -> LoadedModel:
        model = self._model
        if model is None:
            raise ModelUnavailableError("no model is loaded; an admin can POST /admin/reload")
        return model

    @property
    def ready(self) -> bool:
        return self._model is not None

    def predict_batch(self, items: Sequence[PreparedInput]) -> list[PredictionResult]:
        """Blocking: one model call for all ``items`` (call from a worker thread)."""
        model = self.model
        if any(it.image is not None and it.image.shape[0] != model.image_size for it in items):
            # decoded for the previous model's image size, just before a reload swapped models
            raise ModelUnavailableError("the model was replaced during the request; retry it")
        with self._call_lock:
            tops = model.predict(items, top_k=self._top_k)
        meta = model.metadata
        return [
            PredictionResult(top, meta.model_name, meta.model_version, len(items)) for top in tops
        ]

    def reload_with(self, model: LoadedModel) -> None:
        """Swap in an already loaded (and warmed-up) model: every swap goes through here.

        The replaced model's objects were frozen at start-up (:mod:`rakuten_serve.heap`): the
        heap is collected once and frozen again, so they are freed and the new ones are not
        scanned by later collections.
        """
        with self._reload_lock:
            self._model = model
        heap.refreeze()

    def reload(self, spec: str, *, cache_dir: Path, warm_up_batch: int) -> LoadedModel:
        """Blocking: load ``spec``, warm it up, then swap. On any error the old model stays."""
        with self._reload_lock:  # one load at a time: two models in memory at most
            new = load_model(spec, cache_dir=cache_dir, warm_up_batch=warm_up_batch)
            self.reload_with(new)
        return new


def prepare_input(
    designation: str,
    description: str | None,
    image: bytes | None,
    *,
    image_size: int,
    limits: ImageLimits,
) -> PreparedInput:
    """Clean the text, decode the image, compute the record's drift features.

    CPU work: call from a worker thread (the event loop only calls it for text-only products).
    """
    text = product_text(designation, description)
    array, sha256, size = None, None, None
    if image is None:
        if not text:
            raise InvalidInputError("the product has no text left after cleaning and no image")
    else:
        if len(image) > limits.max_bytes:
            raise InputTooLargeError(
                f"image is {len(image)} bytes; the limit is {limits.max_bytes}"
            )
        array = decode_image(image, size=image_size, limits=limits)
        sha256, size = hashlib.sha256(image).hexdigest(), len(image)
    features = input_features(text=text, description=description, image=array)
    return PreparedInput(text, array, sha256, size, features)
