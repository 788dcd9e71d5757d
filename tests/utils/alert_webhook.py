"""Settings and payloads for the alert webhook's tests (``rakuten-monitor alert-webhook``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rakuten_monitor.webhook_settings import WebhookSettings

WEBHOOK_TOKEN = "webhook-token-for-tests-0123456789abcdef-xyz"
AIRFLOW_PASSWORD = "airflow service account password for tests"
PROMETHEUS_PASSWORD = "prometheus basic auth password for tests"


def webhook_settings(tmp_path: Path, airflow_url: str, **overrides: Any) -> WebhookSettings:
    """Settings with both secrets in files under ``tmp_path``; no .env file is read.

    ``prometheus_url`` is left to the caller (an override): the webhook refuses to start without
    it, and each test says which Prometheus, real or stand-in, vouches for its alerts.
    """
    token_file = tmp_path / "webhook_token"
    token_file.write_text(WEBHOOK_TOKEN + "\n", encoding="utf-8")
    password_file = tmp_path / "airflow_password"
    password_file.write_text(AIRFLOW_PASSWORD + "\n", encoding="utf-8")
    values: dict[str, Any] = {
        "environment": "test",
        "log_dir": tmp_path / "logs",
        "alert_webhook_token_file": token_file,
        "airflow_url": airflow_url,
        "airflow_username": "retrain-bot",
        "airflow_password_file": password_file,
        "airflow_timeout_s": 120,  # a loaded machine answers slowly: basic auth hashes
    }
    values.update(overrides)
    return WebhookSettings(_env_file=None, **values)  # type: ignore[call-arg]


def notification(
    *alerts: tuple[str, str], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An Alertmanager (v4) webhook payload with ``(alertname, status)`` alerts.

    Each alert has ``severity`` and ``component`` as the rules set them, plus ``labels``.
    """
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "status": "firing" if any(s == "firing" for _, s in alerts) else "resolved",
        "receiver": "webhook",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": name,
                    "severity": "warning",
                    "component": "model",
                    **(labels or {}),
                },
                "annotations": {"summary": name},
                "startsAt": "2026-11-28T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"{abs(hash(name)):x}",
            }
            for name, status in alerts
        ],
    }
