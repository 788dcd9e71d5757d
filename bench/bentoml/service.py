"""The BentoML peer of ``rakuten-serve``: the same bundle, the same work, BentoML's batching.

``bench/serve_predict.py`` starts it with ``bentoml serve service:Classifier`` from the
``.venv-bentoml`` environment (``bench/bentoml/setup.sh``) and measures it side by side with our
server. BentoML's documented way to batch requests that each carry one item is two services:

- ``Classifier`` takes the multipart body of our ``/predict`` (``designation``, ``description``,
  ``image`` file), prepares it with our own :func:`rakuten_serve.predictor.prepare_input`
  (text cleaning, image decode and resize, drift features: exactly our per-request work) in a
  thread, and asks ``Model`` for the top 5 classes;
- ``Model`` loads the bundle with our :func:`rakuten_serve.predictor.load_model`
  (:func:`rakuten_core.bundle.load_bundle`: ONNX Runtime, no TensorFlow), warms it up on a batch
  of the max size, and exposes a batchable API: in each ``Model`` worker, BentoML's adaptive
  batching (its ``CorkDispatcher``) groups the requests that reach it, from any ``Classifier``
  worker, into one model call (:meth:`rakuten_serve.predictor.LoadedModel.predict`: our model
  call and top-k).

BentoML reads a service's configuration from its decorator when the module is imported, so
the bench hands it over in environment variables (``RAKUTEN_BENTO_*``, below); nothing else
runs at import time.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import bentoml

from rakuten_serve.predictor import LoadedModel, PreparedInput, load_model, prepare_input
from rakuten_serve.settings import ServeSettings

TOP_K = 5


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


CORES = len(os.sched_getaffinity(0))
BUNDLE = os.environ.get("RAKUTEN_BENTO_BUNDLE", "models/current")
API_WORKERS = _env_int("RAKUTEN_BENTO_API_WORKERS", CORES)
MODEL_WORKERS = _env_int("RAKUTEN_BENTO_MODEL_WORKERS", CORES)
MAX_BATCH = _env_int("RAKUTEN_BENTO_MAX_BATCH", 32)  # RAKUTEN_BATCH_MAX_SIZE's default
MAX_LATENCY_MS = _env_int("RAKUTEN_BENTO_MAX_LATENCY_MS", 60_000)  # its default
# Beyond any run: BentoML otherwise reopens its connection to Model every 100 requests / 300 s
RUN_LONG = 10**9
# what both services share: no access log (ours has none either); the request timeout at its
# default (60 s), above wrk's (30 s)
COMMON: dict[str, Any] = {
    "traffic": {"timeout": 60},
    "logging": {"access": {"enabled": False}},
}


@bentoml.service(
    workers=MODEL_WORKERS,
    runner_connection={"max_requests": RUN_LONG, "max_age": float(RUN_LONG)},
    **COMMON,
)
class Model:
    """The bundle's model behind BentoML's adaptive batching."""

    def __init__(self) -> None:
        cache = Path(tempfile.gettempdir())
        self.model: LoadedModel = load_model(BUNDLE, cache_dir=cache, warm_up_batch=MAX_BATCH)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def top(self, items: list[Any]) -> list[Any]:
        """``items``: ``(text, image array or None)`` pairs; one top-5 list for each."""
        prepared = [PreparedInput(text, image) for text, image in items]
        return [
            [(c.prdtypecode, c.name_fr, c.name_en, c.probability) for c in top]
            for top in self.model.predict(prepared, top_k=TOP_K)
        ]


@bentoml.service(workers=API_WORKERS, **COMMON)
class Classifier:
    """``POST /predict``: our multipart body in, the top 5 classes out."""

    model = bentoml.depends(Model)

    def __init__(self) -> None:
        # our image limits at their defaults (size, pixels, formats), checked as ours does
        self.limits = ServeSettings(_env_file=None).image_limits
        self.image_size = load_image_size(BUNDLE)

    @bentoml.api(route="/predict")
    async def predict(
        self,
        designation: str,
        # required: BentoML 1.4.40 cannot make its file type optional (`Path | None` is left to
        # pydantic, which refuses the upload; `Optional[Path]` fails: "unhashable FileSchema");
        # every product the bench posts has an image
        image: Path,
        description: str = "",
    ) -> dict[str, Any]:
        # BentoML hands a file field over as a temporary file (its documented file type)
        prepared = await asyncio.to_thread(self._prepare, designation, description, image)
        (top,) = await self.model.to_async.top([(prepared.text, prepared.image)])
        return {
            "top_k": [
                {"prdtypecode": code, "name_fr": fr, "name_en": en, "probability": p}
                for code, fr, en, p in top
            ],
            "used_image": prepared.image is not None,
        }

    def _prepare(self, designation: str, description: str, image: Path) -> PreparedInput:
        """Our per-request work (:func:`prepare_input`), in a worker thread."""
        return prepare_input(
            designation,
            description or None,
            image.read_bytes(),
            image_size=self.image_size,
            limits=self.limits,
        )


def load_image_size(bundle: str) -> int:
    """The bundle's image size, from its metadata (the model lives in ``Model``)."""
    from rakuten_core.bundle import read_metadata  # noqa: PLC0415

    return read_metadata(bundle).image_size
