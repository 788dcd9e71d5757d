"""The one way the API reports what happens to Prometheus.

The middleware, the runner, the recorder, the auth layer, the rate limiter, feedback and the
model reload call the methods below, named after the event ("a batch ran", "a login failed");
none of them touches a metric object. That keeps names, labels and their bounds in one place
(:mod:`rakuten_serve.metrics`) and lets the benchmark swap in the no-op base :class:`Telemetry` to
measure what monitoring costs.

``/metrics`` answers with :meth:`Telemetry.exposition`: this app's registry in a single
process, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set (``rakuten-serve run --workers N``),
the sum of every worker's files through a :class:`~prometheus_client.multiprocess.
MultiProcessCollector`, so each scrape answers for the whole server whichever worker serves it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from rakuten_serve.metrics import SLI_ROUTES, UNMEASURED_ROUTES, Metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in multiprocess mode."""
    return os.environ.get(MULTIPROC_ENV) or None


class Telemetry:
    """The events the API reports; this base reports nothing (``RAKUTEN_METRICS_ENABLED=false``,
    the benchmark's baseline). :class:`PrometheusTelemetry` is the real one."""

    enabled = False
    multiprocess = False
    content_type = CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (all workers in multiprocess mode)."""
        return b""

    def request_started(self) -> None:
        return None

    def request_finished(self, *, route: str, method: str, status: int, seconds: float) -> None:
        return None

    def queue_depth(self, depth: int) -> None:
        return None

    def overloaded(self) -> None:
        return None

    def batch_ran(self, *, size: int, seconds: float) -> None:
        return None

    def predicted(self, best: Sequence[tuple[int, float]]) -> None:
        """One (predicted prdtypecode, its probability) per product of a model call."""

    def records_written(self, count: int) -> None:
        return None

    def records_dropped(self, count: int) -> None:
        return None

    def db_write_failed(self) -> None:
        return None

    def journal_write_failed(self) -> None:
        return None

    def records_pending(self, count: int) -> None:
        return None

    def auth_failed(self, reason: str) -> None:
        """``reason`` is one of :data:`rakuten_serve.metrics.AUTH_FAILURE_REASONS`."""

    def rate_limited(self, route: str) -> None:
        return None

    def rate_limit_backend_failed(self) -> None:
        return None

    def feedback_received(self, *, correct: bool, true_prdtypecode: int) -> None:
        return None

    def model_loaded(
        self,
        *,
        name: str,
        version: str,
        run_id: str | None,
        source: str,
        prdtypecodes: Sequence[int] = (),
    ) -> None:
        """A model is serving: its identity becomes 1, the one it replaced 0, ready is 1."""

    def model_reloaded(self, *, success: bool) -> None:
        return None

    def image_store_write(self, outcome: str) -> None:
        """``outcome`` is one of :data:`rakuten_serve.metrics.IMAGE_STORE_OUTCOMES`."""

    def image_store_swept(self, *, expired: int, evicted: int, size_bytes: int, files: int) -> None:
        return None

    def challenger_loaded(self, *, name: str, version: str) -> None:
        """A challenger is scored in shadow: its identity becomes 1, the one it replaced 0."""

    def shadow_scored(self, *, agreed: Sequence[bool], seconds: float) -> None:
        """One challenger call in shadow: per request, whether it agreed with the champion."""

    def shadow_dropped(self, reason: str, count: int = 1) -> None:
        """``reason`` is one of :data:`rakuten_serve.metrics.SHADOW_DROP_REASONS`."""


class PrometheusTelemetry(Telemetry):
    """Reports the API's events as Prometheus metrics (see :mod:`rakuten_serve.metrics`)."""

    enabled = True

    def __init__(self) -> None:
        self._m = Metrics()
        self._model_labels: tuple[str, str, str, str] | None = None
        self._challenger_labels: tuple[str, str] | None = None
        directory = multiprocess_dir()
        self.multiprocess = directory is not None
        if directory is None:
            self._exposed = self._m.registry
        else:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=directory)  # type: ignore[no-untyped-call]
        self._m.model_ready.set(0)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (all workers in multiprocess mode)."""
        return generate_latest(self._exposed)

    # --- HTTP (middleware)
    def request_started(self) -> None:
        self._m.in_flight.inc()

    def request_finished(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Counts and times the request, unless it is a probe or a scrape (``UNMEASURED_ROUTES``):
        those are not clients' traffic, and a readiness probe's 503 during a database outage
        would otherwise page as a 5xx storm with no prediction asked."""
        self._m.in_flight.dec()
        if route in UNMEASURED_ROUTES:
            return
        self._m.requests.labels(route=route, method=method, status=str(status)).inc()
        self._m.request_latency.labels(route=route, method=method).observe(seconds)

    # --- the model runner (batcher)
    def queue_depth(self, depth: int) -> None:
        self._m.queue_depth.set(depth)

    def overloaded(self) -> None:
        self._m.overloaded.inc()

    def batch_ran(self, *, size: int, seconds: float) -> None:
        self._m.batch_size.observe(size)
        self._m.inference_latency.observe(seconds)

    def predicted(self, best: Sequence[tuple[int, float]]) -> None:
        """One (predicted prdtypecode, its probability) per product of a model call."""
        for code, probability in best:
            self._m.predictions.labels(prdtypecode=str(code)).inc()
            self._m.confidence.observe(probability)

    # --- prediction records (recorder)
    def records_written(self, count: int) -> None:
        self._m.records_written.inc(count)

    def records_dropped(self, count: int) -> None:
        self._m.records_dropped.inc(count)

    def db_write_failed(self) -> None:
        self._m.db_write_failures.inc()

    def journal_write_failed(self) -> None:
        self._m.journal_write_failures.inc()

    def records_pending(self, count: int) -> None:
        self._m.records_pending.set(count)

    # --- auth and rate limits
    def auth_failed(self, reason: str) -> None:
        """``reason`` is one of :data:`rakuten_serve.metrics.AUTH_FAILURE_REASONS`."""
        self._m.auth_failures.labels(reason=reason).inc()

    def rate_limited(self, route: str) -> None:
        self._m.rate_limited.labels(route=route).inc()

    def rate_limit_backend_failed(self) -> None:
        self._m.rate_limit_backend_errors.inc()

    # --- feedback
    def feedback_received(self, *, correct: bool, true_prdtypecode: int) -> None:
        self._m.feedback.labels(
            correct=str(correct).lower(), prdtypecode=str(true_prdtypecode)
        ).inc()

    # --- the model
    def model_loaded(
        self,
        *,
        name: str,
        version: str,
        run_id: str | None,
        source: str,
        prdtypecodes: Sequence[int] = (),
    ) -> None:
        """A model is serving: its identity becomes 1, the one it replaced 0, ready is 1.

        The per-class counters of its ``prdtypecodes`` start at 0 now: a counter first seen
        at 3 reads as no increase to ``rate()`` and ``increase()``, so the first predictions and
        feedback of each class would be lost to the dashboards and recording rules. So do the
        SLIs' request counts (``SLI_ROUTES``, answered 200, and their latency histogram). The
        load time is what the dashboards annotate as a model reload.
        """
        for code in map(str, prdtypecodes):
            self._m.predictions.labels(prdtypecode=code)
            for correct in ("true", "false"):
                self._m.feedback.labels(correct=correct, prdtypecode=code)
        for route in SLI_ROUTES:
            self._m.requests.labels(route=route, method="POST", status="200")
            self._m.request_latency.labels(route=route, method="POST")
        labels = (name, version, run_id or "", source)
        if self._model_labels is not None and self._model_labels != labels:
            self._m.model_info.labels(*self._model_labels).set(0)
        self._m.model_info.labels(*labels).set(1)
        self._model_labels = labels
        self._m.model_loaded_at.set(time.time())
        self._m.model_ready.set(1)

    def model_reloaded(self, *, success: bool) -> None:
        self._m.model_reloads.labels(outcome="success" if success else "failure").inc()

    # --- image store
    def image_store_write(self, outcome: str) -> None:
        """``outcome`` is one of :data:`rakuten_serve.metrics.IMAGE_STORE_OUTCOMES`."""
        self._m.image_store_writes.labels(outcome=outcome).inc()

    def image_store_swept(self, *, expired: int, evicted: int, size_bytes: int, files: int) -> None:
        self._m.image_store_evicted.labels(reason="retention").inc(expired)
        self._m.image_store_evicted.labels(reason="size").inc(evicted)
        self._m.image_store_bytes.set(size_bytes)

    # --- the challenger in shadow
    def challenger_loaded(self, *, name: str, version: str) -> None:
        labels = (name, version)
        if self._challenger_labels is not None and self._challenger_labels != labels:
            self._m.challenger_info.labels(*self._challenger_labels).set(0)
        self._m.challenger_info.labels(*labels).set(1)
        self._challenger_labels = labels

    def shadow_scored(self, *, agreed: Sequence[bool], seconds: float) -> None:
        self._m.shadow_latency.observe(seconds)
        same = sum(agreed)
        self._m.shadow_predictions.labels(agreement="true").inc(same)
        self._m.shadow_predictions.labels(agreement="false").inc(len(agreed) - same)

    def shadow_dropped(self, reason: str, count: int = 1) -> None:
        self._m.shadow_dropped.labels(reason=reason).inc(count)


def build_telemetry(*, enabled: bool) -> Telemetry:
    return PrometheusTelemetry() if enabled else Telemetry()
