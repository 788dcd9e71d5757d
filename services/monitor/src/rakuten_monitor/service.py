"""The monitor's loop: every interval, read the window, take a snapshot, keep it for scrapes.

A failed run (database unreachable, bundle unreadable) is counted in
``rakuten_monitor_runs_total{outcome="error"}`` and logged; it never stops the loop. The last
good figures are **kept** until the next successful run: a database blip then neither drops a
firing drift alert (Prometheus would resolve it) nor invents a recovery, and
``rakuten_monitor_last_success_timestamp_seconds`` tells how old they are. A run whose bundle
has no usable reference still reports live quality; it counts as an error and exports no drift
score.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from sqlalchemy import Engine

from rakuten_core.errors import RakutenError
from rakuten_monitor.metrics import build_registry
from rakuten_monitor.reference import ModelReference, ReferenceSource
from rakuten_monitor.settings import MonitorSettings
from rakuten_monitor.shadow import ShadowFigures, read_shadow
from rakuten_monitor.snapshot import Snapshot, take_snapshot
from rakuten_monitor.window import build_engine, read_window

logger = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    """A one-line reason for the logs (the first line: drivers add multi-line context)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]


class Monitor:
    """Holds the engine, the reference source, the latest snapshot and the metrics registry."""

    def __init__(self, settings: MonitorSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else build_engine(settings.database_url)
        self.references = ReferenceSource(
            settings.monitor_model_path, refresh_s=settings.monitor_reference_refresh_s
        )
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._last_success: float | None = None
        self.last_error: str | None = None
        self.registry, self._runs = build_registry(self.snapshot, self.last_success)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot | None:
        with self._lock:
            return self._snapshot

    def last_success(self) -> float | None:
        with self._lock:
            return self._last_success

    def run_once(self) -> Snapshot | None:
        """One evaluation; returns the new snapshot, or ``None`` when the database failed."""
        reference: ModelReference | None = None
        reference_error: str | None = None
        try:
            reference = self.references.get()
        except (RakutenError, OSError) as exc:
            reference_error = _reason(exc)
            logger.error("no drift reference from %s: %s", self.references.spec, reference_error)
        try:
            window = read_window(
                self.engine,
                self.settings.monitor_window,
                model_version=reference.model_version if reference is not None else None,
            )
        except Exception as exc:  # any driver or SQLAlchemy error: keep running
            self._failed(_reason(exc))
            return None
        snap = take_snapshot(
            window,
            reference,
            min_predictions=self.settings.monitor_min_predictions,
            min_feedback=self.settings.monitor_min_feedback,
            reference_error=reference_error,
        )
        snap = replace(snap, shadow=self._shadow())
        with self._lock:
            self._snapshot = snap
            if reference_error is None:
                self._last_success = time.time()
        if reference_error is None:
            self._runs.labels(outcome="success").inc()
            self.last_error = None
        else:
            self._runs.labels(outcome="error").inc()
            self.last_error = reference_error
        logger.info(
            "window: %d predictions, %d feedback; drifted: %s",
            snap.window_predictions,
            snap.feedback,
            sorted(name for name, r in snap.drift.items() if r.drifted) or "none",
        )
        return snap

    def _shadow(self) -> ShadowFigures | None:
        """Champion vs challenger; a failure here (e.g. a database before migration 0004) only
        leaves those gauges out, the drift and live-quality figures still count."""
        try:
            return read_shadow(
                self.engine,
                self.settings.monitor_window,
                min_predictions=self.settings.monitor_min_predictions,
                min_feedback=self.settings.monitor_min_feedback,
            )
        except Exception as exc:  # any driver or SQLAlchemy error
            logger.warning("no shadow figures: %s", _reason(exc))
            return None

    def _failed(self, reason: str) -> None:
        self._runs.labels(outcome="error").inc()
        self.last_error = reason
        logger.warning("monitor run failed, keeping the last figures: %s", reason)

    # ---- background loop
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="monitor-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.engine.dispose()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # a bug must not kill the loop; it is logged with its traceback
                logger.exception("monitor run crashed")
                self._runs.labels(outcome="error").inc()
            if self._stop.wait(self.settings.monitor_interval_s):
                return
