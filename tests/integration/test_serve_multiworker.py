"""``rakuten-serve run --workers N`` for real: every scrape of /metrics answers for all workers.

Before multiprocess mode, six scrapes after 820 predictions with two workers read 577, 242,
242, 578, 578, 578 (each scrape answered for one worker). Here, after N predictions sent on
fresh connections (so the kernel spreads them over the workers), each of several consecutive
scrapes must read exactly N; and a killed worker's live gauges stop counting while what it
counted stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.prom_text import sample_value
from tests.utils.serve_app import (
    PASSWORD,
    ServeProcess,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
    settings_env,
)
from tests.utils.serve_fixtures import serve_bundle_dir

__all__ = ["serve_bundle_dir"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]
logger = logging.getLogger(__name__)

REQUESTS = 24
SCRAPES = 8
PREDICT_OK = {"route": "/predict", "method": "POST", "status": "200"}


def _worker_pids(metrics_dir: Path) -> set[int]:
    """Pids of the workers that have written metric files (``<kind>_<pid>.db``)."""
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("*.db")}


def _wait_for_workers(server: ServeProcess, metrics_dir: Path, workers: int) -> None:
    """Every worker has started and loaded its model (readiness is the minimum over workers)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_path.read_text()[-3000:]
        if len(_worker_pids(metrics_dir)) >= workers:
            text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
            if sample_value(text, "rakuten_model_ready") == 1:
                return
        time.sleep(0.5)
    raise TimeoutError(server.log_path.read_text()[-3000:])


def _scrape(server: ServeProcess) -> str:
    # a fresh connection each time, so successive scrapes reach different workers
    response = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


@pytest.mark.timeout(1800)  # 4 TensorFlow workers loading on 2 shared cores take minutes
@pytest.mark.parametrize("workers", [2, 4])
def test_every_scrape_counts_every_worker(
    workers: int, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    migrate_and_add_users(settings, {"alice": ["predict"]})
    metrics_dir = tmp_path / "prometheus-multiproc"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale file of an earlier run")
    env = settings_env(settings, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    server = ServeProcess(env, workers=workers, log_path=tmp_path / "server.out")
    try:
        server.wait_ready(timeout_s=600)
        _wait_for_workers(server, metrics_dir, workers)
        assert 1 not in _worker_pids(metrics_dir)  # the stale file was wiped at start
        token = httpx.post(
            f"{server.base_url}/token",
            data={"username": "alice", "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        codes = []
        for i in range(REQUESTS):
            answer = httpx.post(
                f"{server.base_url}/predict",
                headers={"Authorization": f"Bearer {token}"},
                data={"designation": f"Piscine tubulaire {i}"},
                files={"image": ("p.jpg", jpeg_bytes(), "image/jpeg")},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            codes.append(answer.json()["prdtypecode"])

        seen = []
        for _ in range(SCRAPES):
            text = _scrape(server)
            seen.append(sample_value(text, "rakuten_http_requests_total", **PREDICT_OK))
            predictions = sum(
                sample_value(text, "rakuten_predictions_total", prdtypecode=str(code)) or 0
                for code in set(codes)
            )
            assert predictions == REQUESTS
            assert sample_value(text, "rakuten_prediction_confidence_count") == REQUESTS
            assert sample_value(text, "rakuten_http_requests_in_flight") == 1  # this scrape
        logger.info("%d workers, %d predictions, %d scrapes: %s", workers, REQUESTS, SCRAPES, seen)
        assert seen == [REQUESTS] * SCRAPES

        # A worker killed outright: the supervisor restarts it and marks the dead one, whose
        # live gauges disappear; its counters stay in the totals.
        victim = min(_worker_pids(metrics_dir))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while list(metrics_dir.glob(f"gauge_live*_{victim}.db")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
        assert list(metrics_dir.glob(f"counter_{victim}.db"))
        # the other workers answer while the replacement loads its model
        after = [
            sample_value(_scrape(server), "rakuten_http_requests_total", **PREDICT_OK)
            for _ in range(SCRAPES)
        ]
        assert after == [REQUESTS] * SCRAPES
    finally:
        # a worker still loading its model stops only once loaded: give the parent time to
        # join every worker (ServeProcess.close kills it after 20 s)
        if server.process.poll() is None:
            server.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=300)
        server.close()
    assert server.process.returncode == 0, server.log_path.read_text()[-3000:]
    # the parent marked every worker dead at shutdown: no live gauge file is left behind
    assert not list(metrics_dir.glob("gauge_live*.db"))
