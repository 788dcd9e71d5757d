"""The quick start's Alertmanager, for real: who gets each alert, what is muted, what a person
reads.

A real ``alertmanager`` (Debian package) loads monitoring/alertmanager/alertmanager.yml with only
its addresses rewritten: the monitor's notification log is the real monitor app (uvicorn, its
``/notifications`` and ``/heartbeat`` behind the same token), the retraining webhook a recorder,
every route's waits 1 s. Alerts posted to ``/api/v2/alerts`` (as Prometheus would post them,
annotations included) then show, in Alertmanager's own API, the receivers of each and which
ones are inhibited and by what: the inhibition rules are exercised by Alertmanager itself,
where test_alertmanager_config.py models them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from rakuten_monitor.app import create_app
from rakuten_monitor.settings import MonitorSettings
from tests.utils.live_server import live_server
from tests.utils.monitoring import ALERTMANAGER_DIR, ALERTMANAGER_YML, alert_rules, load_yaml
from tests.utils.prometheus_stack import Daemon, start_alertmanager, write_yaml

pytestmark = pytest.mark.integration
TOKEN = "notifications-token-for-tests-only-0123456789"


def _recorder(received: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/alertmanager")
    async def hook(request: Request) -> dict[str, bool]:
        body = await request.json()
        with lock:
            received.append(body)
        return {"ok": True}

    return app


def _config(monitor: str, webhook: str, token_file: Path) -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(ALERTMANAGER_YML)
    config["templates"] = [str(ALERTMANAGER_DIR / "templates" / "*.tmpl")]
    config["global"].pop("smtp_auth_password_file")
    for route in [config["route"], *config["route"]["routes"]]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    for receiver in config["receivers"]:
        for integration in receiver.get("slack_configs", []):
            integration["api_url"] = integration["api_url"].replace("http://monitor:9108", monitor)
            integration["http_config"]["authorization"]["credentials_file"] = str(token_file)
        for integration in receiver.get("webhook_configs", []):
            integration["url"] = f"{webhook}/alertmanager"
            integration["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def _alert(name: str, **labels: str) -> dict[str, Any]:
    """``name`` as Prometheus would post it: the rule's labels and annotations, ``labels``."""
    (rule,) = [r for r in alert_rules() if r["alert"] == name]
    annotations = {k: v for k, v in rule["annotations"].items() if "{{" not in v}
    annotations.setdefault("summary", name)
    annotations.setdefault("description", name)
    return {"labels": {"alertname": name, **rule["labels"], **labels}, "annotations": annotations}


def _wait(what: str, ready: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := ready()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Daemon, str, list[dict[str, Any]]]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    settings = MonitorSettings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'serve.db'}",
        monitor_model_path=str(tmp_path / "bundle"),
        monitor_interval_s=3600,
        monitor_notifications_token_file=token_file,
    )
    received: list[dict[str, Any]] = []
    with (
        live_server(create_app(settings), health_path="/metrics") as monitor,
        live_server(_recorder(received), health_path="/health") as webhook,
    ):
        config = write_yaml(tmp_path / "alertmanager.yml", _config(monitor, webhook, token_file))
        alertmanager = start_alertmanager(config, tmp_path)
        try:
            yield alertmanager, monitor, received
        finally:
            alertmanager.close()


def test_receivers_and_inhibitions_in_a_real_alertmanager(
    stack: tuple[Daemon, str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rakuten_monitor.notifications")
    alertmanager, monitor, received = stack
    serve = {"job": "serve"}
    firing = {
        "api down a": _alert("RakutenApiDown", instance="a:8000", **serve),
        "no model a": _alert("RakutenModelNotReady", instance="a:8000", **serve),
        "no model b": _alert("RakutenModelNotReady", instance="b:8000", **serve),
        "5xx": _alert("RakutenHigh5xxRatio", **serve),
        "latency": _alert("RakutenPredictLatencyP95High", route="/predict", **serve),
        "auth": _alert("RakutenAuthFailureSpike", **serve),
        "dropped": _alert("RakutenPredictionRecordsDropped", **serve),
        "drift": _alert(
            "RakutenDriftAboveThreshold", job="monitor", instance="monitor:9108", feature="no_image"
        ),
        "watchdog": _alert("RakutenWatchdog"),
    }
    posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=list(firing.values()))
    assert posted.status_code == 200, posted.text

    def state() -> dict[str, dict[str, Any]]:
        alerts = httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=10).json()
        by_labels = {
            key: next((a for a in alerts if a["labels"] == alert["labels"]), None)
            for key, alert in firing.items()
        }
        return by_labels if all(by_labels.values()) else {}

    alerts: dict[str, dict[str, Any]] = _wait("the alerts in Alertmanager", state)
    receivers = {k: [r["name"] for r in a["receivers"]] for k, a in alerts.items()}
    assert receivers["api down a"] == ["oncall"] and receivers["dropped"] == ["oncall"]
    assert receivers["latency"] == ["people"] and receivers["auth"] == ["people"]
    assert receivers["drift"] == ["retrain-webhook", "people"]
    assert receivers["watchdog"] == ["deadmansswitch"]
    fingerprint = {k: a["fingerprint"] for k, a in alerts.items()}
    muted = {k: a["status"]["inhibitedBy"] for k, a in alerts.items() if a["status"]["inhibitedBy"]}
    # the replica down mutes its own missing model only; the 5xx storm mutes the latency, never
    # the authentication failures; nothing mutes lost records or the other replica
    assert muted == {
        "no model a": [fingerprint["api down a"]],
        "latency": [fingerprint["5xx"]],
    }

    # what reached a person: the notification log, one message per group (alert name and job:
    # the six groups that are not inhibited), the runbook in it
    def notes() -> list[str]:
        found = [r.message for r in caplog.records if "alert notification to" in r.message]
        return found if len(found) >= 6 else []

    text = "\n".join(_wait("the notifications in the monitor's log", notes))
    assert "alert notification to oncall: [FIRING:1] RakutenApiDown (serve)" in text
    assert "alert notification to people: [FIRING:1] RakutenAuthFailureSpike (serve)" in text
    assert "alert notification to people: [FIRING:1] RakutenDriftAboveThreshold" in text
    assert "runbook: docs/runbooks.md#rakutenpredictionrecordsdropped" in text
    assert "RakutenModelNotReady" in text and "instance=b:8000" in text
    assert "RakutenPredictLatencyP95High" not in text  # inhibited: never sent
    assert "RakutenWatchdog" not in text  # the heartbeat is not a notification
    health = _wait("the heartbeat", lambda: httpx.get(f"{monitor}/health").json()["last_heartbeat"])
    assert health > 0
    # the retraining webhook got the drift alert, and nothing else
    names = {a["labels"]["alertname"] for body in received for a in body["alerts"]}
    assert names == {"RakutenDriftAboveThreshold"}
