"""Alertmanager -> alert webhook -> Airflow's REST API, every piece real, on 127.0.0.1.

A real ``alertmanager`` (Debian package) routes a firing drift alert to the webhook (served by
uvicorn), presenting the bearer token it reads from a file; the webhook triggers
``rakuten_retrain`` on a real ``airflow webserver`` (basic auth, service account with the
``User`` role). No scheduler runs, so the run stays queued: a second notification must not
start a second run (the cooldown is off here, so that it is Airflow's dedupe that refuses it).
A wrong Airflow password is a 502 that names no secret.

Prometheus is a stand-in (tests/utils/webhook_peers.py) showing both retrain alerts firing: the
webhook acts only on alerts Prometheus vouches for, and what is tested here is Airflow's side.
Refusals of alerts Prometheus does not show firing, with a real Alertmanager, are in
tests/integration/test_alert_webhook_alertmanager.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from rakuten_monitor.alert_webhook import create_webhook_app
from tests.utils.airflow_env import (
    API_AUTH,
    airflow_bin,
    airflow_env,
    create_user,
    migrate_db,
)
from tests.utils.alert_webhook import (
    AIRFLOW_PASSWORD,
    WEBHOOK_TOKEN,
    notification,
    webhook_settings,
)
from tests.utils.closed_loop import alertmanager_config
from tests.utils.live_server import live_server
from tests.utils.postgres import free_port
from tests.utils.processes import stop_process, wait_http_ok
from tests.utils.prometheus_stack import start_alertmanager
from tests.utils.webhook_peers import FakePrometheus, prometheus_alert

# minutes on an idle 2-core machine; a loaded one needs far more (fixtures included)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3600)]
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
BOT = "retrain-bot"
MONITOR = {"job": "monitor", "instance": "monitor:9108"}


@dataclass(frozen=True)
class Airflow:
    url: str
    admin: tuple[str, str]

    def runs(self) -> list[dict[str, object]]:
        response = httpx.get(
            f"{self.url}/api/v1/dags/rakuten_retrain/dagRuns", auth=self.admin, timeout=30
        )
        assert response.status_code == 200, response.text
        runs: list[dict[str, object]] = response.json()["dag_runs"]
        return runs


@pytest.fixture(scope="module")
def prometheus() -> Iterator[FakePrometheus]:
    """Prometheus holding both retrain alerts firing, as the monitor's figures would make it."""
    firing = [
        prometheus_alert("RakutenDriftAboveThreshold", **MONITOR, feature="no_description"),
        prometheus_alert("RakutenLiveAccuracyLow", **MONITOR),
    ]
    with FakePrometheus(firing) as fake:
        yield fake


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow")
    migrate_db(home)
    env = airflow_env(home, API_AUTH)
    serialized = subprocess.run(
        [str(airflow_bin()), "dags", "reserialize"], env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert serialized.returncode == 0, serialized.stderr[-2000:]
    port = free_port()
    log_path = home / "webserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(airflow_bin()), "webserver", "--port", str(port), "--hostname", "127.0.0.1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(process, f"{url}/health", log_path=log_path, timeout_s=900)
            # the webserver has created the default roles (User, Op, Viewer) by now
            create_user(home, "admin", "admin-password-for-tests", "Admin")
            create_user(home, BOT, AIRFLOW_PASSWORD, "User")
            yield Airflow(url, ("admin", "admin-password-for-tests"))
        finally:
            stop_process(process)


def test_a_firing_drift_alert_triggers_one_retrain_and_no_second(
    airflow: Airflow, prometheus: FakePrometheus, tmp_path: Path
) -> None:
    settings = webhook_settings(
        tmp_path,
        airflow.url,
        airflow_username=BOT,
        prometheus_url=prometheus.url,
        alert_webhook_cooldown_s=0,
    )
    with live_server(create_webhook_app(settings), health_path="/health") as webhook:
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(
            yaml.safe_dump(alertmanager_config(webhook, settings.alert_webhook_token_file))
        )
        alertmanager = start_alertmanager(am_config, tmp_path)
        try:
            labels = {"alertname": "RakutenDriftAboveThreshold", "severity": "warning"}
            alert = [{"labels": {**labels, "component": "model", "job": "monitor"}}]
            posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=alert, timeout=10)
            assert posted.status_code == 200, posted.text
            deadline = time.monotonic() + 900
            runs: list[dict[str, object]] = []
            while time.monotonic() < deadline and not runs:
                runs = airflow.runs()
                time.sleep(1)
        finally:
            alertmanager.close()
        assert len(runs) == 1, runs
        assert runs[0]["conf"] == {
            "trigger": "alertmanager",
            "alerts": ["RakutenDriftAboveThreshold"],
        }
        assert runs[0]["state"] == "queued"

        again = httpx.post(
            f"{webhook}/alertmanager",
            json=notification(("RakutenLiveAccuracyLow", "firing")),
            headers=AUTH,
            timeout=60,
        )
        assert again.status_code == 200
        assert again.json()["triggered"] is False
        assert again.json()["dag_run_id"] == runs[0]["dag_run_id"]
        assert len(airflow.runs()) == 1
        assert 'outcome="deduplicated"' in httpx.get(f"{webhook}/metrics").text


def test_a_wrong_airflow_password_is_a_502_naming_no_secret(
    airflow: Airflow, prometheus: FakePrometheus, tmp_path: Path
) -> None:
    settings = webhook_settings(
        tmp_path, airflow.url, airflow_username=BOT, prometheus_url=prometheus.url
    )
    assert settings.airflow_password_file is not None
    settings.airflow_password_file.write_text("not-the-password\n", encoding="utf-8")
    with live_server(create_webhook_app(settings), health_path="/health") as webhook:
        answer = httpx.post(
            f"{webhook}/alertmanager",
            json=notification(("RakutenDriftAboveThreshold", "firing")),
            headers=AUTH,
            timeout=60,
        )
    assert answer.status_code == 502
    assert "401" in answer.json()["detail"]
    assert "not-the-password" not in answer.text and WEBHOOK_TOKEN not in answer.text
