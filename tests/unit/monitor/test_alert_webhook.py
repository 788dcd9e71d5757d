"""The alert webhook's own behaviour: who may call it, what it reads, what it refuses.

Airflow is not running in these tests: its URL is a closed loopback port, so a request that
gets as far as calling Airflow ends in a real connection error (502). Triggering and dedupe
against a real Airflow are in tests/integration/test_alert_webhook_airflow.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from rakuten_core.errors import ConfigurationError
from rakuten_monitor.alert_webhook import create_webhook_app
from tests.utils.alert_webhook import (
    AIRFLOW_PASSWORD,
    WEBHOOK_TOKEN,
    notification,
    webhook_settings,
)
from tests.utils.postgres import free_port

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    return TestClient(create_webhook_app(webhook_settings(tmp_path, closed)))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {WEBHOOK_TOKEN}"},
     {"Authorization": f"Bearer {WEBHOOK_TOKEN}x"}],
)  # fmt: skip
def test_no_valid_bearer_token_no_entry(client: TestClient, headers: dict[str, str]) -> None:
    payload = notification(("RakutenDriftAboveThreshold", "firing"))
    response = client.post("/alertmanager", json=payload, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert 'outcome="unauthorized"' in client.get("/metrics").text


def test_a_payload_that_is_not_alertmanager_s_is_refused(client: TestClient) -> None:
    assert client.post("/alertmanager", json={"alerts": "x"}, headers=AUTH).status_code == 422
    assert client.post("/alertmanager", content=b"{", headers=AUTH).status_code == 422


def test_resolved_and_other_alerts_do_not_retrain(client: TestClient) -> None:
    payload = notification(("RakutenDriftAboveThreshold", "resolved"), ("RakutenApiDown", "firing"))
    response = client.post("/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "triggered": False,
        "reason": "no firing alert that retrains",
        "alerts": [],
        "dag_run_id": None,
    }


def test_airflow_unreachable_is_a_502_for_alertmanager_to_retry_without_the_password(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payload = notification(("RakutenLiveAccuracyLow", "firing"))
    response = client.post("/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 502
    assert "Airflow unreachable" in response.json()["detail"]
    assert AIRFLOW_PASSWORD not in response.text and AIRFLOW_PASSWORD not in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text
    assert 'outcome="airflow_error"' in client.get("/metrics").text


def test_the_retrain_alerts_are_configurable(tmp_path: Path) -> None:
    settings = webhook_settings(
        tmp_path, "http://127.0.0.1:1", alert_webhook_retrain_alerts="A, B,"
    )
    assert settings.retrain_alerts == {"A", "B"}
    with TestClient(create_webhook_app(settings)) as client:
        assert client.get("/health").json()["alerts"] == ["A", "B"]


def test_secrets_must_exist_and_be_real_in_production(tmp_path: Path) -> None:
    settings = webhook_settings(tmp_path, "http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="RAKUTEN_ALERT_WEBHOOK_TOKEN_FILE"):
        create_webhook_app(settings.model_copy(update={"alert_webhook_token_file": None}))
    missing = settings.model_copy(update={"airflow_password_file": tmp_path / "absent"})
    with pytest.raises(ConfigurationError, match="cannot read"):
        create_webhook_app(missing)
    (tmp_path / "short").write_text("changeme\n", encoding="utf-8")
    weak = settings.model_copy(
        update={"environment": "production", "alert_webhook_token_file": tmp_path / "short"}
    )
    with pytest.raises(ConfigurationError, match="placeholder"):
        create_webhook_app(weak)


def test_credentials_never_go_in_the_airflow_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must not hold credentials"):
        webhook_settings(tmp_path, "http://bot:secret@airflow:8080")
