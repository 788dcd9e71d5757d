"""The challenger in shadow: it scores a share of the requests after the champion answered.

The answer always comes from the champion. When a challenger is loaded and
``RAKUTEN_SHADOW_SHARE`` > 0, the predict route hands each sampled request to
:meth:`ShadowScorer.offer` once its answer is built: a ``put_nowait`` on a bounded queue, nothing
else on the request path. One shadow thread takes what is queued in batches, runs the challenger
(its own model, its own lock, its own image size: an image is decoded again when the two models
differ), and writes one ``shadow_predictions`` row per request beside the champion's answer.
When the queue is full (the challenger cannot keep up) a request is not shadowed and
``rakuten_shadow_dropped_total{reason="queue_full"}`` counts it; a failed challenger call or
database write counts ``reason="error"``. Shadow rows are a sample, so they are not spooled.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from rakuten_core.records import ShadowPrediction
from rakuten_core.schema import ImageLimits, Product
from rakuten_serve.db.inserts import insert_new
from rakuten_serve.predictor import Predictor, PreparedInput, prepare_input
from rakuten_serve.schemas import PredictionResponse
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)
_STOP = object()


@dataclass(frozen=True)
class ShadowRequest:
    """A request the champion answered, with what the challenger needs to score it too."""

    answer: PredictionResponse
    prepared: PreparedInput
    product: Product
    image: bytes | None


class ShadowScorer:
    """Background scoring of sampled requests by the challenger (see the module docstring)."""

    def __init__(
        self,
        challenger: Predictor,
        *,
        engine: Engine,
        telemetry: Telemetry,
        share: float,
        queue_size: int,
        batch_size: int,
        image_limits: ImageLimits,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self._challenger = challenger
        self._engine = engine
        self._telemetry = telemetry
        self._share = share
        self._batch_size = batch_size
        self._limits = image_limits
        self._sample = sample
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._scored = 0

    @property
    def scored(self) -> int:
        """Requests scored by the challenger and written so far (tests, logs)."""
        return self._scored

    def offer(
        self,
        answer: PredictionResponse,
        prepared: PreparedInput,
        product: Product,
        image: bytes | None,
    ) -> None:
        """Never blocks: queue the request for the challenger if it is sampled."""
        if self._share <= 0 or self._thread is None or not self._challenger.ready:
            return
        if self._share < 1 and self._sample() >= self._share:
            return
        try:
            self._queue.put_nowait(ShadowRequest(answer, prepared, product, image))
        except queue.Full:
            self._telemetry.shadow_dropped("queue_full")

    def start(self) -> None:
        if self._share <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Score what is queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        self._thread = None

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is queued (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    # ---- the shadow thread
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[ShadowRequest] = []
            stopping = item is _STOP
            if not stopping:
                batch.append(item)  # type: ignore[arg-type]
            while len(batch) < self._batch_size and not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
            try:
                if batch:
                    self._score(batch)
            except Exception as exc:  # the challenger or the database failed: a lost sample
                self._telemetry.shadow_dropped("error", len(batch))
                logger.warning("shadow scoring of %d requests failed: %s", len(batch), exc)
            finally:
                for _ in range(len(batch) + (1 if stopping else 0)):
                    self._queue.task_done()
            if stopping:
                return

    def _inputs(self, batch: list[ShadowRequest]) -> list[PreparedInput]:
        size = self._challenger.model.image_size
        out = []
        for req in batch:
            prepared = req.prepared
            decoded = prepared.image
            if req.image is not None and (decoded is None or decoded.shape[0] != size):
                prepared = prepare_input(
                    req.product.designation,
                    req.product.description,
                    req.image,
                    image_size=size,
                    limits=self._limits,
                )
            out.append(prepared)
        return out

    def _score(self, batch: list[ShadowRequest]) -> None:
        inputs = self._inputs(batch)
        started = time.perf_counter()
        results = self._challenger.predict_batch(inputs)
        seconds = time.perf_counter() - started
        now = datetime.now(UTC)
        rows = [
            {
                "request_id": req.answer.request_id,
                "created_at": now,
                "champion_model_version": req.answer.model_version,
                "champion_prdtypecode": req.answer.prdtypecode,
                "champion_probability": req.answer.probability,
                "challenger_model_name": result.model_name,
                "challenger_model_version": result.model_version,
                "challenger_prdtypecode": result.top[0].prdtypecode,
                "challenger_probability": result.top[0].probability,
                "challenger_latency_ms": round(seconds * 1000, 2),
            }
            for req, result in zip(batch, results, strict=True)
        ]
        agreed = [r["champion_prdtypecode"] == r["challenger_prdtypecode"] for r in rows]
        # a request retried on another replica may be shadowed by both: the first row stays
        with self._engine.begin() as connection:
            insert_new(connection, ShadowPrediction, rows)
        self._scored += len(rows)
        self._telemetry.shadow_scored(agreed=agreed, seconds=seconds)
