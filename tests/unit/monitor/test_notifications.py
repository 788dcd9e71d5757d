"""The monitor's notification log: Alertmanager's quick-start receiver (Slack-compatible posts).

The app is built without its lifespan (no ``with TestClient``): the monitor's loop does not run,
the routes under test do not need it. The payloads are what Alertmanager's Slack integration
posts with the project's templates; tests/integration/test_alertmanager_receivers.py sends them
from a real Alertmanager.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rakuten_core.errors import ConfigurationError
from rakuten_monitor.app import create_app
from rakuten_monitor.settings import MonitorSettings
from tests.utils.monitor import parse_metrics

TOKEN = "notifications-token-for-tests-only-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(tmp_path: Path, **overrides: Any) -> MonitorSettings:
    token_file = tmp_path / "notifications_token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'serve.db'}",
        "monitor_model_path": str(tmp_path / "bundle"),
        "monitor_notifications_token_file": token_file,
        **overrides,
    }
    return MonitorSettings(_env_file=None, **values)  # type: ignore[call-arg]


def _message(title: str, text: str, receiver: str = "people") -> dict[str, Any]:
    """What Alertmanager's slack_configs posts (monitoring/alertmanager/templates)."""
    return {
        "channel": "",
        "username": receiver,
        "attachments": [
            {"title": title, "title_link": "", "text": text, "fallback": "", "color": "danger",
             "mrkdwn_in": ["fallback", "pretext", "text"]},
        ],
    }  # fmt: skip


def _count(client: TestClient, kind: str) -> float:
    samples = parse_metrics(client.get("/metrics").text)
    return samples[("rakuten_monitor_notifications_total", (("kind", kind),))]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(_settings(tmp_path)))


def test_a_firing_notification_is_logged_as_a_warning_with_its_runbook(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rakuten_monitor.notifications")
    text = (
        "FIRING critical RakutenApiDown instance=10.0.0.2:8000 job=serve\n"
        "  Prediction API replica 10.0.0.2:8000 is down: Prometheus cannot scrape it.\n"
        "  runbook: docs/runbooks.md#rakutenapidown | dashboard: /d/rakuten-api"
    )
    answer = client.post(
        "/notifications", json=_message("[FIRING:1] RakutenApiDown (serve)", text, "oncall"),
        headers=AUTH,
    )  # fmt: skip
    # Slack's own answer: Alertmanager 0.27 counts anything else as a failed notification
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert answer.headers["content-type"].startswith("application/json")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "alert notification to oncall: [FIRING:1] RakutenApiDown (serve)" in record.message
    assert "docs/runbooks.md#rakutenapidown" in record.message
    assert _count(client, "firing") == 1 and _count(client, "resolved") == 0


def test_a_resolved_notification_is_information(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rakuten_monitor.notifications")
    message = _message("[RESOLVED] RakutenMonitorDown (monitor)", "RESOLVED warning ...")
    assert client.post("/notifications", json=message, headers=AUTH).status_code == 200
    (record,) = caplog.records
    assert record.levelno == logging.INFO and "[RESOLVED] RakutenMonitorDown" in record.message
    assert _count(client, "resolved") == 1 and _count(client, "firing") == 0


def test_the_heartbeat_is_timed_for_health_not_logged_as_a_warning(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rakuten_monitor.notifications")
    assert client.get("/health").json()["last_heartbeat"] is None
    beat = client.post(
        "/heartbeat", json=_message("[FIRING:1] RakutenWatchdog", "", "deadmansswitch"),
        headers=AUTH,
    )  # fmt: skip
    assert beat.status_code == 200 and beat.json() == {"ok": True}
    assert client.get("/health").json()["last_heartbeat"] > 0
    assert caplog.records == []  # every 5 minutes: DEBUG only
    assert _count(client, "heartbeat") == 1 and _count(client, "firing") == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
     {"Authorization": f"Bearer {TOKEN}x"}],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/notifications", "/heartbeat"])
def test_no_valid_bearer_token_writes_nothing(
    client: TestClient, caplog: pytest.LogCaptureFixture, headers: dict[str, str], path: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="rakuten_monitor.notifications")
    answer = client.post(path, json=_message("[FIRING:1] Forged", "x"), headers=headers)
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert caplog.records == []
    assert {_count(client, k) for k in ("firing", "resolved", "heartbeat")} == {0}
    assert client.get("/health").json()["last_heartbeat"] is None


def test_without_a_token_file_there_is_no_notification_route(tmp_path: Path) -> None:
    client = TestClient(create_app(_settings(tmp_path, monitor_notifications_token_file=None)))
    assert client.post("/notifications", json=_message("t", "x"), headers=AUTH).status_code == 404
    assert client.post("/heartbeat", json={}, headers=AUTH).status_code == 404
    assert "rakuten_monitor_notifications_total" not in client.get("/metrics").text
    assert client.get("/health").json()["last_heartbeat"] is None


def test_an_unreadable_or_weak_token_stops_the_start(tmp_path: Path) -> None:
    missing = _settings(tmp_path, monitor_notifications_token_file=tmp_path / "nope")
    with pytest.raises(ConfigurationError, match="NOTIFICATIONS_TOKEN_FILE: cannot read"):
        create_app(missing)
    weak = tmp_path / "weak"
    weak.write_text("short\n", encoding="utf-8")
    production = _settings(
        tmp_path, monitor_notifications_token_file=weak, environment="production"
    )
    with pytest.raises(ConfigurationError, match="NOTIFICATIONS_TOKEN_FILE"):
        create_app(production)


def test_a_message_out_of_bounds_is_refused(client: TestClient) -> None:
    message = _message("t", "x")
    message["attachments"] = message["attachments"] * 21
    assert client.post("/notifications", json=message, headers=AUTH).status_code == 422
