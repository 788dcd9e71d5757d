"""The HTTP routes before any good read: the loop keeps going, nothing is invented."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from rakuten_monitor.app import create_app
from rakuten_monitor.settings import MonitorSettings
from tests.utils.monitor import parse_metrics


def test_unreachable_database_counts_errors_and_exports_no_figures(
    tmp_path: Path, bundle_dir: Path
) -> None:
    settings = MonitorSettings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'missing' / 'serve.db'}",
        monitor_model_path=str(bundle_dir),
        monitor_interval_s=0.1,
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        samples = parse_metrics(client.get("/metrics").text)
        while samples.get(("rakuten_monitor_runs_total", (("outcome", "error"),)), 0) < 2:
            assert time.monotonic() < deadline, samples
            time.sleep(0.1)
            samples = parse_metrics(client.get("/metrics").text)
        names = {name for name, _ in samples}
        assert samples[("rakuten_monitor_runs_total", (("outcome", "success"),))] == 0
        assert names.isdisjoint(
            {
                "rakuten_drift_score",
                "rakuten_drift_window_predictions",
                "rakuten_live_accuracy",
                "rakuten_monitor_last_success_timestamp_seconds",
            }
        )
        health = client.get("/health")
        assert health.status_code == 200
        assert "OperationalError" in health.json()["last_error"]
        assert health.json()["window_predictions"] is None
        report = client.get("/report")
        assert report.status_code == 503 and report.headers["retry-after"] == "1"
        assert "No successful read" in report.text
    assert client.app.state.monitor.running is False  # type: ignore[attr-defined]
