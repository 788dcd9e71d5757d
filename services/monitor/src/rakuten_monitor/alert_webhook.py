"""Alertmanager's webhook receiver: firing drift/quality alerts trigger ``rakuten_retrain``.

Its own process (``rakuten-monitor alert-webhook``), not a route of the metrics server: the
metrics server is scraped without credentials, this endpoint starts trainings and holds the
Airflow service account's password, so it gets its own port, its own secrets and nothing else.

``POST /alertmanager`` (Alertmanager's webhook payload, version 4) needs
``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization.credentials_file``).
A notification is a claim, not evidence: anyone inside the stack can post an alert to
Alertmanager. For the firing alerts named in ``RAKUTEN_ALERT_WEBHOOK_RETRAIN_ALERTS``, in order:

1. evidence: only the alerts Prometheus itself shows firing (``/api/v1/alerts``,
   :mod:`rakuten_monitor.prometheus_alerts`) count; the others are refused, each logged as a
   warning and counted in ``rakuten_alert_webhook_unconfirmed_alerts_total{alertname}`` (checked
   first, so a forged alert is counted even while nothing could be triggered anyway);
2. cooldown: within ``RAKUTEN_ALERT_WEBHOOK_COOLDOWN_S`` of the last retrain this process
   triggered, nothing is triggered (kept in memory: a restart forgets it, the dedupe remains);
3. dedupe: no trigger while a run is already queued or running in Airflow;
4. the DAG is triggered with ``{"trigger": "alertmanager", "alerts": [<confirmed names>]}``.

Answers (Alertmanager retries a notification on 5xx only, never on 4xx): 200 with what was done
or why not (cooldown, not firing in Prometheus, a run already active), 401 bad token, 422 not an
Alertmanager payload, 503 Prometheus unreachable (fail closed; retried), 502 Airflow unreachable
or refusing (retried).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from rakuten_monitor.airflow_client import AirflowClient, AirflowError
from rakuten_monitor.prometheus_alerts import PrometheusAlerts, PrometheusError, is_firing
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
    alerts: list[str] = Field(default_factory=list, description="Alerts acted on.")
    refused: list[str] = Field(
        default_factory=list, description="Alerts refused: Prometheus does not show them firing."
    )
    dag_run_id: str | None = None


@dataclass
class Cooldown:
    """No second trigger within ``seconds`` of the last one (0: no cooldown)."""

    seconds: float
    clock: Callable[[], float]
    last: float | None = None

    def elapsed(self) -> float | None:
        """Seconds since the last trigger while the cooldown lasts; None once it is over."""
        if self.last is None:
            return None
        elapsed = self.clock() - self.last
        return elapsed if elapsed < self.seconds else None

    def start(self) -> None:
        self.last = self.clock()


def create_webhook_app(
    settings: WebhookSettings,
    airflow: AirflowClient | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The receiver's app; the secrets are read once, here (a bad one stops the start).

    Without ``RAKUTEN_PROMETHEUS_URL`` it does not start: it would have no evidence to go on.
    ``clock`` (monotonic seconds) times the cooldown; tests pass their own.
    """
    token = settings.webhook_token().get_secret_value().encode("utf-8")
    client = airflow or AirflowClient(
        base_url=settings.airflow_url,
        username=settings.airflow_username,
        password=settings.airflow_password().get_secret_value(),
        dag_id=settings.airflow_dag_id,
        timeout_s=settings.airflow_timeout_s,
    )
    credentials = settings.prometheus_credentials()
    prometheus = PrometheusAlerts(
        settings.prometheus_base_url(),
        username=credentials[0] if credentials else "",
        password=credentials[1].get_secret_value() if credentials else "",
        timeout_s=settings.prometheus_timeout_s,
    )
    wanted = settings.retrain_alerts
    cooldown = Cooldown(settings.alert_webhook_cooldown_s, clock)
    lock = threading.Lock()  # cooldown, dedupe and trigger are one step: no two runs at once
    registry = CollectorRegistry()
    notifications = Counter(
        "rakuten_alert_webhook_notifications",
        "Alertmanager notifications received, by outcome.",
        ["outcome"],
        registry=registry,
    )
    unconfirmed = Counter(
        "rakuten_alert_webhook_unconfirmed_alerts",
        "Firing alerts received that Prometheus does not show firing (refused), by name.",
        ["alertname"],
        registry=registry,
    )
    for name in wanted:  # bounded: only the alerts that retrain are checked; 0 from the start
        unconfirmed.labels(alertname=name)
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

    def confirm(claimed: list[Alert]) -> tuple[list[str], list[str]]:
        """(names Prometheus shows firing, names it does not); fails closed with a 503."""
        try:
            held = prometheus.firing()
        except PrometheusError as exc:
            notifications.labels(outcome="prometheus_error").inc()
            names = sorted({a.labels["alertname"] for a in claimed})
            logger.error("cannot check %s with Prometheus, nothing triggered: %s", names, exc)
            # 503: Alertmanager retries the notification, by then Prometheus may answer
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}: no retrain without its evidence"
            ) from None
        confirmed: set[str] = set()
        for alert in claimed:
            if is_firing(alert.labels, held):
                confirmed.add(alert.labels["alertname"])
                continue
            unconfirmed.labels(alertname=alert.labels["alertname"]).inc()
            logger.warning(
                "alert %s %s is not firing in Prometheus: refused, no retrain",
                alert.labels["alertname"],
                alert.labels,
            )
        refused = {a.labels["alertname"] for a in claimed} - confirmed
        return sorted(confirmed), sorted(refused)

    @app.post("/alertmanager", response_model=Outcome, summary="Alertmanager webhook receiver")
    def receive(
        notification: Notification,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Outcome:
        authorize(authorization)
        claimed = [
            a
            for a in notification.alerts
            if a.status == "firing" and a.labels.get("alertname") in wanted
        ]
        if not claimed:
            notifications.labels(outcome="ignored").inc()
            return Outcome(triggered=False, reason="no firing alert that retrains")
        firing, refused = confirm(claimed)
        if not firing:
            # 200, not a 4xx: the notification was read and decided on; Alertmanager would not
            # retry a 4xx either, only count it as a failed delivery, mixing up forged alerts
            # with a broken webhook. The refusal is in this answer, the log and the metric.
            notifications.labels(outcome="unconfirmed").inc()
            return Outcome(
                triggered=False, reason="not firing in Prometheus: refused", refused=refused
            )
        with lock:
            if (elapsed := cooldown.elapsed()) is not None:
                notifications.labels(outcome="cooldown").inc()
                logger.info(
                    "alerts %s: cooldown, a retrain was triggered %.0f s ago (cooldown %.0f s)",
                    firing,
                    elapsed,
                    cooldown.seconds,
                )
                return Outcome(
                    triggered=False,
                    reason=f"cooldown: a retrain was triggered {elapsed:.0f} s ago",
                    alerts=firing,
                    refused=refused,
                )
            try:
                active = client.active_runs()
                if active:
                    notifications.labels(outcome="deduplicated").inc()
                    logger.info("alerts %s: run %s already queued or running", firing, active[0])
                    return Outcome(
                        triggered=False,
                        reason="a retrain is already queued or running",
                        alerts=firing,
                        refused=refused,
                        dag_run_id=active[0],
                    )
                run_id = client.trigger({"trigger": "alertmanager", "alerts": firing})
            except AirflowError as exc:
                notifications.labels(outcome="airflow_error").inc()
                logger.error("cannot trigger %s for %s: %s", settings.airflow_dag_id, firing, exc)
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
            cooldown.start()
        notifications.labels(outcome="triggered").inc()
        logger.warning("alerts %s triggered %s run %s", firing, settings.airflow_dag_id, run_id)
        return Outcome(
            triggered=True,
            reason="retrain triggered",
            alerts=firing,
            refused=refused,
            dag_run_id=run_id,
        )

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "dag_id": settings.airflow_dag_id, "alerts": sorted(wanted)}

    @app.get("/metrics", summary="Prometheus metrics of the receiver")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
