"""HTTP face of the monitor: ``/metrics`` for Prometheus, ``/health``, ``/report`` (HTML), and
with ``RAKUTEN_MONITOR_NOTIFICATIONS_TOKEN_FILE`` Alertmanager's notification log
(``/notifications``, ``/heartbeat``: :mod:`rakuten_monitor.notifications`).

``create_app(settings, monitor=None)`` builds the app; the monitor's loop runs in a thread
started and stopped by the lifespan, so a test or the CLI gets the same behaviour. The token is
read once, here: a missing or unusable file stops the start (:class:`ConfigurationError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rakuten_monitor.metrics import notification_counter
from rakuten_monitor.notifications import NotificationLog, notifications_router
from rakuten_monitor.report import render_report
from rakuten_monitor.service import Monitor
from rakuten_monitor.settings import MonitorSettings


def create_app(settings: MonitorSettings, monitor: Monitor | None = None) -> FastAPI:
    """The monitor's ASGI app; its loop starts with the app and stops with it."""
    token = settings.notifications_token()  # before the monitor: a bad file starts nothing
    mon = monitor if monitor is not None else Monitor(settings)
    notifications = (
        NotificationLog(token, notification_counter(mon.registry)) if token is not None else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        mon.start()
        try:
            yield
        finally:
            mon.stop()

    app = FastAPI(
        title="Rakuten monitor",
        summary="Drift and live quality over the prediction records.",
        lifespan=lifespan,
    )
    app.state.monitor = mon
    if notifications is not None:
        app.include_router(notifications_router(notifications))

    @app.get("/metrics", summary="Prometheus metrics (text format)")
    def metrics() -> Response:
        return Response(generate_latest(mon.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", summary="Liveness, with the last run's outcome")
    def health() -> JSONResponse:
        snap = mon.snapshot()
        body: dict[str, Any] = {
            "status": "ok" if mon.running else "stopped",
            "last_success": mon.last_success(),
            "last_error": mon.last_error,
            "window_predictions": snap.window_predictions if snap else None,
            "feedback": snap.feedback if snap else None,
            # the Watchdog's last heartbeat from Alertmanager (None: not yet, or no log)
            "last_heartbeat": notifications.last_heartbeat() if notifications else None,
        }
        return JSONResponse(body, status_code=200 if mon.running else 503)

    @app.get("/report", response_class=HTMLResponse, summary="HTML drift report")
    def report() -> HTMLResponse:
        snap = mon.snapshot()
        if snap is None:
            return HTMLResponse(
                "<!doctype html><title>No report yet</title><p>No successful read of the "
                "prediction records yet; see /health.</p>",
                status_code=503,
                headers={"Retry-After": str(max(1, int(settings.monitor_interval_s)))},
            )
        return HTMLResponse(render_report(snap))

    return app
