"""Multiprocess metrics: real worker processes write, one reader sums, dead workers stop counting.

The workers here are plain Python processes reporting through :class:`PrometheusTelemetry` with
``PROMETHEUS_MULTIPROC_DIR`` set before they import prometheus_client, as uvicorn's workers do;
``tests/integration/test_serve_multiworker.py`` runs the same checks on real uvicorn workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import multiprocess

from rakuten_serve.multiproc import MULTIPROC_ENV, multiprocess_metrics_dir
from rakuten_serve.telemetry import PrometheusTelemetry
from tests.utils.paths import REPO_ROOT
from tests.utils.prom_text import sample_labels, sample_value

WORKER = """
import os, sys
from rakuten_serve.telemetry import PrometheusTelemetry
t = PrometheusTelemetry()
assert t.multiprocess
requests, depth, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "ready"
for _ in range(requests):
    t.request_started()
    t.request_finished(route="/predict", method="POST", status=200, seconds=0.01)
t.request_started()  # one still in flight
t.queue_depth(depth)
t.records_pending(depth)
if ready:
    t.model_loaded(name="m", version="v1", run_id=None, source="models/current")
print(os.getpid())
"""


def _worker(directory: Path, requests: int, depth: int, ready: bool) -> int:
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    env[MULTIPROC_ENV] = str(directory)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(requests), str(depth), "ready" if ready else "no"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def _scrape(directory: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    reader = PrometheusTelemetry()
    assert reader.multiprocess
    return reader.exposition().decode()


def test_workers_add_up_and_dead_workers_stop_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _worker(tmp_path, requests=5, depth=2, ready=True)
    second = _worker(tmp_path, requests=3, depth=3, ready=False)
    text = _scrape(tmp_path, monkeypatch)
    ok = {"route": "/predict", "method": "POST", "status": "200"}
    assert sample_value(text, "rakuten_http_requests_total", **ok) == 8
    assert sample_value(text, "rakuten_http_request_duration_seconds_count", route="/predict") == 8
    assert sample_value(text, "rakuten_http_requests_in_flight") == 2  # livesum
    assert sample_value(text, "rakuten_batch_queue_depth") == 5  # livesum
    assert sample_value(text, "rakuten_prediction_records_pending") == 5  # livesum
    assert sample_value(text, "rakuten_model_ready") == 0  # livemin: one worker has no model
    assert sample_labels(text, "rakuten_model_info") == [
        {"name": "m", "version": "v1", "run_id": "", "source": "models/current"}
    ]
    assert "pid" not in text  # no per-process label reaches Prometheus

    multiprocess.mark_process_dead(second, str(tmp_path))  # type: ignore[no-untyped-call]
    text = _scrape(tmp_path, monkeypatch)
    assert sample_value(text, "rakuten_http_requests_total", **ok) == 8  # what it counted stays
    assert sample_value(text, "rakuten_http_requests_in_flight") == 1
    assert sample_value(text, "rakuten_batch_queue_depth") == 2
    assert sample_value(text, "rakuten_model_ready") == 1

    multiprocess.mark_process_dead(first, str(tmp_path))  # type: ignore[no-untyped-call]
    text = _scrape(tmp_path, monkeypatch)
    assert sample_value(text, "rakuten_model_ready") is None
    assert sample_labels(text, "rakuten_model_info") == []


def test_given_directory_is_wiped_of_metric_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "metrics"
    given.mkdir()
    _worker(given, requests=4, depth=1, ready=True)
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_metrics_dir() as directory:
        assert directory == given
        assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
        text = _scrape(given, monkeypatch)
        assert sample_value(text, "rakuten_http_requests_total", route="/predict") is None
    assert given.is_dir() and os.environ[MULTIPROC_ENV] == str(given)


def test_private_directory_is_created_exported_and_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics_dir() as directory:
        assert os.environ[MULTIPROC_ENV] == str(directory)
        assert directory.is_dir() and not any(directory.iterdir())
    assert MULTIPROC_ENV not in os.environ
    assert not directory.exists()
