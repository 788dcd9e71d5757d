"""The alert webhook's own behaviour: who may call it, what it believes, what it refuses.

Prometheus and Airflow are stand-ins here (tests/utils/webhook_peers.py): real HTTP servers on
loopback that the webhook reaches with its real clients, or a closed loopback port for "down".
Against real processes: Airflow in tests/integration/test_alert_webhook_airflow.py, a forged
alert posted to a real Alertmanager in tests/integration/test_alert_webhook_alertmanager.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from rakuten_core.errors import ConfigurationError
from rakuten_monitor.alert_webhook import create_webhook_app
from tests.utils.alert_webhook import (
    AIRFLOW_PASSWORD,
    PROMETHEUS_PASSWORD,
    WEBHOOK_TOKEN,
    notification,
    webhook_settings,
)
from tests.utils.postgres import free_port
from tests.utils.webhook_peers import FakeAirflow, FakePrometheus, prometheus_alert

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
DRIFT, ACCURACY = "RakutenDriftAboveThreshold", "RakutenLiveAccuracyLow"
MONITOR = {"job": "monitor", "instance": "monitor:9108"}
DRIFTING = {**MONITOR, "feature": "no_description"}


def _closed() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def _post(client: TestClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    """Prometheus holding the drift alert firing for one feature, nothing else."""
    with FakePrometheus([prometheus_alert(DRIFT, **DRIFTING)]) as fake:
        yield fake


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow() as fake:
        yield fake


@pytest.fixture
def client(tmp_path: Path, prometheus: FakePrometheus, airflow: FakeAirflow) -> TestClient:
    settings = webhook_settings(tmp_path, airflow.url, prometheus_url=prometheus.url)
    return TestClient(create_webhook_app(settings))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {WEBHOOK_TOKEN}"},
     {"Authorization": f"Bearer {WEBHOOK_TOKEN}x"}],
)  # fmt: skip
def test_no_valid_bearer_token_no_entry(
    client: TestClient, prometheus: FakePrometheus, headers: dict[str, str]
) -> None:
    payload = notification((DRIFT, "firing"), labels=DRIFTING)
    response = client.post("/alertmanager", json=payload, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert 'outcome="unauthorized"' in client.get("/metrics").text
    assert prometheus.requests == []


def test_a_payload_that_is_not_alertmanager_s_is_refused(client: TestClient) -> None:
    assert client.post("/alertmanager", json={"alerts": "x"}, headers=AUTH).status_code == 422
    assert client.post("/alertmanager", content=b"{", headers=AUTH).status_code == 422


def test_resolved_and_other_alerts_do_not_retrain(
    client: TestClient, prometheus: FakePrometheus, airflow: FakeAirflow
) -> None:
    payload = notification((DRIFT, "resolved"), ("RakutenApiDown", "firing"))
    assert _post(client, payload) == {
        "triggered": False,
        "reason": "no firing alert that retrains",
        "alerts": [],
        "refused": [],
        "dag_run_id": None,
    }
    assert prometheus.requests == [] and airflow.requests == []


def test_an_alert_prometheus_shows_firing_triggers_a_retrain(
    client: TestClient, prometheus: FakePrometheus, airflow: FakeAirflow
) -> None:
    # Alertmanager's copy may carry more labels (Prometheus' external labels): not compared
    body = _post(client, notification((DRIFT, "firing"), labels={**DRIFTING, "site": "paris"}))
    assert body["triggered"] is True and body["alerts"] == [DRIFT] and body["refused"] == []
    assert [r["conf"] for r in airflow.runs] == [{"trigger": "alertmanager", "alerts": [DRIFT]}]
    assert body["dag_run_id"] == airflow.runs[0]["dag_run_id"]
    assert [(r.method, r.path) for r in prometheus.requests] == [("GET", "/api/v1/alerts")]
    assert _metric(client, 'rakuten_alert_webhook_notifications_total{outcome="triggered"}') == 1


def test_an_alert_prometheus_does_not_show_firing_is_refused(
    client: TestClient,
    prometheus: FakePrometheus,
    airflow: FakeAirflow,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The forged alert: posted to Alertmanager by hand, pending or absent in Prometheus."""
    prometheus.alerts = [prometheus_alert(DRIFT, state="pending", **DRIFTING)]
    caplog.set_level(logging.WARNING, logger="rakuten_monitor.alert_webhook")
    body = _post(client, notification((DRIFT, "firing"), (ACCURACY, "firing"), labels=MONITOR))
    assert body == {
        "triggered": False,
        "reason": "not firing in Prometheus: refused",
        "alerts": [],
        "refused": [DRIFT, ACCURACY],  # sorted
        "dag_run_id": None,
    }
    assert airflow.requests == []  # not even asked
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 2 and all("not firing in Prometheus" in m for m in refusals)
    assert {DRIFT, ACCURACY} == {m.split()[1] for m in refusals}
    for name in (DRIFT, ACCURACY):
        unconfirmed = f'rakuten_alert_webhook_unconfirmed_alerts_total{{alertname="{name}"}}'
        assert _metric(client, unconfirmed) == 1
    assert _metric(client, 'rakuten_alert_webhook_notifications_total{outcome="unconfirmed"}') == 1


@pytest.mark.parametrize(
    "labels",
    [{**DRIFTING, "feature": "image_brightness"}, {**DRIFTING, "job": "rakuten_train"}],
    ids=["another feature", "another job"],
)
def test_an_alert_whose_labels_differ_from_prometheus_is_refused(
    client: TestClient, airflow: FakeAirflow, labels: dict[str, str]
) -> None:
    body = _post(client, notification((DRIFT, "firing"), labels=labels))
    assert body["triggered"] is False and body["refused"] == [DRIFT]
    assert airflow.runs == []


def test_the_name_alone_matches_when_prometheus_fires_that_alert(
    client: TestClient, airflow: FakeAirflow
) -> None:
    """Labels only one side has are not compared: the retrain rests on Prometheus' word."""
    payload = notification((DRIFT, "firing"))
    payload["alerts"][0]["labels"] = {"alertname": DRIFT}
    assert _post(client, payload)["triggered"] is True
    assert len(airflow.runs) == 1


def test_only_the_confirmed_alerts_are_acted_on(client: TestClient, airflow: FakeAirflow) -> None:
    body = _post(client, notification((DRIFT, "firing"), (ACCURACY, "firing"), labels=DRIFTING))
    assert body["triggered"] is True
    assert body["alerts"] == [DRIFT] and body["refused"] == [ACCURACY]
    assert airflow.runs[0]["conf"]["alerts"] == [DRIFT]


@pytest.mark.parametrize("down", ["closed port", "500", "not its API"])
def test_prometheus_unavailable_fails_closed_with_a_503(
    tmp_path: Path, airflow: FakeAirflow, caplog: pytest.LogCaptureFixture, down: str
) -> None:
    caplog.set_level(logging.ERROR, logger="rakuten_monitor.alert_webhook")
    with FakePrometheus(fail_with=500 if down == "500" else None) as fake:
        url = {"closed port": _closed(), "500": fake.url, "not its API": f"{fake.url}/nope"}[down]
        app = create_webhook_app(webhook_settings(tmp_path, airflow.url, prometheus_url=url))
        with TestClient(app) as client:
            payload = notification((DRIFT, "firing"), labels=DRIFTING)
            response = client.post("/alertmanager", json=payload, headers=AUTH)
            assert response.status_code == 503  # Alertmanager retries a 5xx
            assert "no retrain without its evidence" in response.json()["detail"]
            assert 'outcome="prometheus_error"' in client.get("/metrics").text
    assert airflow.requests == []
    assert any(DRIFT in r.getMessage() for r in caplog.records)


def test_prometheus_basic_auth_is_sent_and_its_password_never_shown(
    tmp_path: Path, airflow: FakeAirflow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "prometheus_password"
    password_file.write_text(PROMETHEUS_PASSWORD + "\n", encoding="utf-8")
    alerts = [prometheus_alert(DRIFT, **DRIFTING)]
    with FakePrometheus(alerts, basic_auth=("alert-webhook", PROMETHEUS_PASSWORD)) as fake:
        settings = webhook_settings(
            tmp_path,
            airflow.url,
            prometheus_url=fake.url,
            prometheus_username="alert-webhook",
            prometheus_password_file=password_file,
        )
        payload = notification((DRIFT, "firing"), labels=DRIFTING)
        client = TestClient(create_webhook_app(settings))
        assert _post(client, payload)["triggered"] is True
        password_file.write_text("wrong\n", encoding="utf-8")  # read at start: a new app
        client = TestClient(create_webhook_app(settings))
        refused = client.post("/alertmanager", json=payload, headers=AUTH)
    assert refused.status_code == 503 and "401" in refused.json()["detail"]
    assert len(airflow.runs) == 1
    assert PROMETHEUS_PASSWORD not in caplog.text and PROMETHEUS_PASSWORD not in refused.text


def test_a_second_trigger_within_the_cooldown_is_refused(
    tmp_path: Path, prometheus: FakePrometheus, airflow: FakeAirflow
) -> None:
    now = [1000.0]
    settings = webhook_settings(tmp_path, airflow.url, prometheus_url=prometheus.url)
    assert settings.alert_webhook_cooldown_s == 6 * 3600
    client = TestClient(create_webhook_app(settings, clock=lambda: now[0]))
    payload = notification((DRIFT, "firing"), labels=DRIFTING)
    assert _post(client, payload)["triggered"] is True
    now[0] += 6 * 3600 - 1
    body = _post(client, payload)  # the first run finished (Airflow shows nothing active)
    assert body["triggered"] is False
    assert body["reason"] == "cooldown: a retrain was triggered 21599 s ago"
    assert len(airflow.runs) == 1
    assert _metric(client, 'rakuten_alert_webhook_notifications_total{outcome="cooldown"}') == 1
    now[0] += 1
    assert _post(client, payload)["triggered"] is True
    assert len(airflow.runs) == 2


def test_without_cooldown_an_active_run_still_deduplicates(
    tmp_path: Path, prometheus: FakePrometheus
) -> None:
    with FakeAirflow(run_state="queued") as airflow:
        settings = webhook_settings(
            tmp_path, airflow.url, prometheus_url=prometheus.url, alert_webhook_cooldown_s=0
        )
        client = TestClient(create_webhook_app(settings))
        payload = notification((DRIFT, "firing"), labels=DRIFTING)
        first = _post(client, payload)
        again = _post(client, payload)
    assert first["triggered"] is True and again["triggered"] is False
    assert again["dag_run_id"] == first["dag_run_id"] and len(airflow.runs) == 1


def test_airflow_unreachable_is_a_502_for_alertmanager_to_retry_without_the_password(
    tmp_path: Path, prometheus: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = webhook_settings(tmp_path, _closed(), prometheus_url=prometheus.url)
    client = TestClient(create_webhook_app(settings))
    payload = notification((DRIFT, "firing"), labels=DRIFTING)
    response = client.post("/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 502
    assert "Airflow unreachable" in response.json()["detail"]
    assert AIRFLOW_PASSWORD not in response.text and AIRFLOW_PASSWORD not in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text
    assert 'outcome="airflow_error"' in client.get("/metrics").text


def test_the_retrain_alerts_are_configurable(tmp_path: Path) -> None:
    settings = webhook_settings(
        tmp_path, _closed(), prometheus_url=_closed(), alert_webhook_retrain_alerts="A, B,"
    )
    assert settings.retrain_alerts == {"A", "B"}
    with TestClient(create_webhook_app(settings)) as client:
        assert client.get("/health").json()["alerts"] == ["A", "B"]
        assert 'rakuten_alert_webhook_unconfirmed_alerts_total{alertname="A"} 0.0' in (
            client.get("/metrics").text
        )


def test_secrets_must_exist_and_be_real_in_production(tmp_path: Path) -> None:
    settings = webhook_settings(tmp_path, _closed(), prometheus_url=_closed())
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


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"prometheus_url": ""}, "RAKUTEN_PROMETHEUS_URL must be set"),
        ({"prometheus_username": "bot"}, "RAKUTEN_PROMETHEUS_PASSWORD_FILE must be set"),
        ({"prometheus_password_file": Path("p")}, "without RAKUTEN_PROMETHEUS_USERNAME"),
    ],
)
def test_without_a_usable_prometheus_the_webhook_does_not_start(
    tmp_path: Path, update: dict[str, Any], message: str
) -> None:
    settings = webhook_settings(tmp_path, _closed(), prometheus_url=_closed())
    with pytest.raises(ConfigurationError, match=message):
        create_webhook_app(settings.model_copy(update=update))


@pytest.mark.parametrize("field", ["airflow_url", "prometheus_url"])
def test_credentials_never_go_in_a_url(tmp_path: Path, field: str) -> None:
    urls = {"airflow_url": _closed(), "prometheus_url": _closed()}
    urls[field] = "http://bot:secret@host:8080"
    airflow_url = urls.pop("airflow_url")
    with pytest.raises(ValidationError, match=f"RAKUTEN_{field.upper()} must not hold"):
        webhook_settings(tmp_path, airflow_url, **urls)
