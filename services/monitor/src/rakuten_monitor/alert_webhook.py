"""Alertmanager's webhook receiver: firing drift/quality alerts trigger ``rakuten_retrain``.

Its own process (``rakuten-monitor alert-webhook``), not a route of the metrics server: the
metrics server is scraped without credentials, this endpoint starts trainings and holds the
Airflow service account's password, so it gets its own port, its own secrets and nothing else.

``POST /alertmanager`` (Alertmanager's webhook payload, version 4) needs
``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization.credentials_file``).
For the firing alerts named in ``RAKUTEN_ALERT_WEBHOOK_RETRAIN_ALERTS`` it triggers the DAG with
``{"trigger": "alertmanager", "alerts": [...]}``, unless a run is already queued or running
(dedupe: one retrain at a time, whatever number of notifications). Answers: 200 with what was
done, 401 bad token, 422 not an Alertmanager payload, 502 Airflow unreachable or refusing
(Alertmanager then retries the notification).
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from rakuten_monitor.airflow_client import AirflowClient, AirflowError
from rakuten_monitor.webhook_settings import WebhookSettings

logger = logging.getLogger(__name__)


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)


class Notification(BaseModel):
    """The part of Alertmanager's webhook payload the receiver reads."""

    model_config = ConfigDict(extra="ignore")

    version: str
    status: str
    alerts: list[Alert] = Field(max_length=10_000)


class Outcome(BaseModel):
    triggered: bool
    reason: str
    alerts: list[str] = Field(default_factory=list)
    dag_run_id: str | None = None


def create_webhook_app(settings: WebhookSettings, airflow: AirflowClient | None = None) -> FastAPI:
    """The receiver's app; the secrets are read once, here (a bad one stops the start)."""
    token = settings.webhook_token().get_secret_value().encode("utf-8")
    client = airflow or AirflowClient(
        base_url=settings.airflow_url,
        username=settings.airflow_username,
        password=settings.airflow_password().get_secret_value(),
        dag_id=settings.airflow_dag_id,
        timeout_s=settings.airflow_timeout_s,
    )
    wanted = settings.retrain_alerts
    lock = threading.Lock()  # check-then-trigger is one step: no two runs from two requests
    registry = CollectorRegistry()
    notifications = Counter(
        "rakuten_alert_webhook_notifications",
        "Alertmanager notifications received, by outcome.",
        ["outcome"],
        registry=registry,
    )
    app = FastAPI(title="Rakuten alert webhook", summary="Alertmanager -> Airflow retrain trigger")

    def authorize(authorization: str | None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            presented.strip().encode("utf-8"), token
        ):
            notifications.labels(outcome="unauthorized").inc()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.post("/alertmanager", response_model=Outcome, summary="Alertmanager webhook receiver")
    def receive(
        notification: Notification,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Outcome:
        authorize(authorization)
        firing = sorted(
            {
                a.labels.get("alertname", "")
                for a in notification.alerts
                if a.status == "firing" and a.labels.get("alertname") in wanted
            }
        )
        if not firing:
            notifications.labels(outcome="ignored").inc()
            return Outcome(triggered=False, reason="no firing alert that retrains")
        with lock:
            try:
                active = client.active_runs()
                if active:
                    notifications.labels(outcome="deduplicated").inc()
                    logger.info("alerts %s: run %s already queued or running", firing, active[0])
                    return Outcome(
                        triggered=False,
                        reason="a retrain is already queued or running",
                        alerts=firing,
                        dag_run_id=active[0],
                    )
                run_id = client.trigger({"trigger": "alertmanager", "alerts": firing})
            except AirflowError as exc:
                notifications.labels(outcome="airflow_error").inc()
                logger.error("cannot trigger %s for %s: %s", settings.airflow_dag_id, firing, exc)
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
        notifications.labels(outcome="triggered").inc()
        logger.warning("alerts %s triggered %s run %s", firing, settings.airflow_dag_id, run_id)
        return Outcome(triggered=True, reason="retrain triggered", alerts=firing, dag_run_id=run_id)

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "dag_id": settings.airflow_dag_id, "alerts": sorted(wanted)}

    @app.get("/metrics", summary="Prometheus metrics of the receiver")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
