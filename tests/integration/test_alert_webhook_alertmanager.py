"""A forged alert posted to a real Alertmanager does not retrain; a real one does, once Prometheus
can vouch for it.

A real ``alertmanager`` (Debian package), configured from the project's own file
(:func:`tests.utils.closed_loop.alertmanager_config`: webhook pointed at the test's, e-mail
removed, 1 s group waits), notifies the real webhook app (uvicorn), which reads its evidence
from a Prometheus stand-in and triggers on an Airflow stand-in (tests/utils/webhook_peers.py):
no Airflow install, seconds instead of minutes. In order:

1. anyone inside the stack posts ``RakutenLiveAccuracyLow`` to ``/api/v2/alerts``: Alertmanager
   delivers it, the webhook refuses it (Prometheus does not show it firing), Airflow hears
   nothing;
2. ``RakutenDriftAboveThreshold``, which Prometheus does show firing, while Prometheus answers
   500: the webhook answers 503, Alertmanager retries; once Prometheus answers, one run starts.

With real Airflow: tests/integration/test_alert_webhook_airflow.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rakuten_monitor.alert_webhook import create_webhook_app
from tests.utils.alert_webhook import webhook_settings
from tests.utils.closed_loop import alertmanager_config
from tests.utils.live_server import live_server
from tests.utils.prometheus_stack import Daemon, start_alertmanager
from tests.utils.webhook_peers import FakeAirflow, FakePrometheus, prometheus_alert

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DRIFT, ACCURACY = "RakutenDriftAboveThreshold", "RakutenLiveAccuracyLow"
DRIFTING = {"job": "monitor", "instance": "monitor:9108", "feature": "no_description"}


def _wait(what: str, ready: Callable[[], Any], timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := ready()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def _post_alert(alertmanager: Daemon, name: str, labels: dict[str, str]) -> None:
    alert = [{"labels": {"alertname": name, "severity": "warning", "component": "model", **labels}}]
    posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=alert, timeout=10)
    assert posted.status_code == 200, posted.text


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Daemon, FakePrometheus, FakeAirflow, str]]:
    with (
        FakePrometheus([prometheus_alert(DRIFT, **DRIFTING)]) as prometheus,
        FakeAirflow() as airflow,
    ):
        settings = webhook_settings(tmp_path, airflow.url, prometheus_url=prometheus.url)
        assert settings.alert_webhook_token_file is not None
        with live_server(create_webhook_app(settings), health_path="/health") as webhook:
            config = tmp_path / "alertmanager.yml"
            config.write_text(
                yaml.safe_dump(alertmanager_config(webhook, settings.alert_webhook_token_file))
            )
            alertmanager = start_alertmanager(config, tmp_path)
            try:
                yield alertmanager, prometheus, airflow, webhook
            finally:
                alertmanager.close()


def test_a_forged_alert_is_refused_and_a_real_one_retrains_once_prometheus_answers(
    stack: tuple[Daemon, FakePrometheus, FakeAirflow, str],
) -> None:
    alertmanager, prometheus, airflow, webhook = stack

    def metrics() -> str:
        return httpx.get(f"{webhook}/metrics", timeout=10).text

    # 1. the forged alert reaches the webhook through Alertmanager, and is refused
    _post_alert(alertmanager, ACCURACY, {"job": "monitor", "instance": "monitor:9108"})
    refused = f'rakuten_alert_webhook_unconfirmed_alerts_total{{alertname="{ACCURACY}"}} 1.0'
    _wait("the webhook refusing the forged alert", lambda: refused in metrics())
    assert [(r.method, r.path) for r in prometheus.requests] == [("GET", "/api/v1/alerts")]
    assert airflow.requests == []

    # 2. a real alert while Prometheus fails: 503, Alertmanager retries, then it goes through
    prometheus.fail_with = 500
    _post_alert(alertmanager, DRIFT, DRIFTING)
    _wait("Alertmanager retrying after a 503", lambda: len(prometheus.requests) >= 3)
    assert 'outcome="prometheus_error"' in metrics()
    assert airflow.requests == []
    prometheus.fail_with = None
    runs = _wait("a retrain triggered", lambda: airflow.runs)
    assert [r["conf"] for r in runs] == [{"trigger": "alertmanager", "alerts": [DRIFT]}]
    assert 'outcome="triggered"' in metrics()
    time.sleep(3)  # Alertmanager's later flushes (1 s group interval) start nothing more
    assert len(airflow.runs) == 1
