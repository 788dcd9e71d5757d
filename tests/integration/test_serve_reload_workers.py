"""``POST /admin/reload`` on a real ``rakuten-serve run --workers 2`` reaches both workers.

Under load from ``wrk`` (keep-alive connections held by both workers), an admin reloads a second
bundle: the answer lists both workers with the new version, wrk saw only 200s and no dropped
connection, and requests on fresh connections (spread by the kernel over the workers) all
answer the new version. A bundle that cannot load changes nothing anywhere (422). A worker
killed outright comes back (uvicorn restarts it) serving the model last published, not the one
the server started with.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.serve_app import (
    PASSWORD,
    ServeProcess,
    migrate_and_add_users,
    serve_settings,
    settings_env,
)
from tests.utils.serve_bundle import make_broken_bundle
from tests.utils.serve_fixtures import copy_bundle_as, serve_bundle_dir
from tests.utils.wrk import WrkResult, run_wrk

__all__ = ["serve_bundle_dir"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]
logger = logging.getLogger(__name__)

FRESH_REQUESTS = 16


def _token(base: str, user: str) -> str:
    answer = httpx.post(f"{base}/token", data={"username": user, "password": PASSWORD}, timeout=30)
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["access_token"]
    return value


def _versions_on_fresh_connections(base: str, token: str) -> list[str]:
    versions = []
    for i in range(FRESH_REQUESTS):
        answer = httpx.post(  # a new client each time: a new connection, any worker
            f"{base}/predict",
            headers={"Authorization": f"Bearer {token}"},
            data={"designation": f"Piscine tubulaire {i}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        versions.append(answer.json()["model_version"])
    return versions


def _worker_files(run_dir: Path) -> dict[int, dict[str, object]]:
    found = {}
    for path in run_dir.glob("worker-*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[int(data["pid"])] = data["roles"]["champion"]
    return found


def _wait_for_workers(
    run_dir: Path, count: int, server: ServeProcess
) -> dict[int, dict[str, object]]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_path.read_text()[-3000:]
        live = {
            pid: status
            for pid, status in _worker_files(run_dir).items()
            if Path(f"/proc/{pid}").exists()
        }
        if len(live) >= count:
            return live
        time.sleep(0.5)
    raise TimeoutError(server.log_path.read_text()[-3000:])


@pytest.mark.timeout(1800)  # two TensorFlow workers loading on 2 shared cores take minutes
def test_reload_reaches_every_worker_under_load(serve_bundle_dir: Path, tmp_path: Path) -> None:
    settings = serve_settings(
        tmp_path, model_path=str(serve_bundle_dir), predict_rate_limit="1000000/minute"
    )
    migrate_and_add_users(settings, {"alice": ["predict"], "root": ["predict", "admin"]})
    original = json.loads((serve_bundle_dir / "bundle.json").read_text())["model_version"]
    v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "v2-all-workers")
    broken = make_broken_bundle(serve_bundle_dir, tmp_path / "broken")
    run_dir = tmp_path / "run"
    env = settings_env(settings, RAKUTEN_RUN_DIR=str(run_dir), RAKUTEN_RELOAD_POLL_S="0.2")
    server = ServeProcess(env, workers=2, log_path=tmp_path / "server.out")
    try:
        server.wait_ready(timeout_s=900)
        before = _wait_for_workers(run_dir, 2, server)
        assert {s["model_version"] for s in before.values()} == {original}
        base = server.base_url
        alice, root = _token(base, "alice"), _token(base, "root")
        admin = {"Authorization": f"Bearer {root}"}

        # the reload, while wrk keeps 8 connections busy on both workers
        load: list[WrkResult] = []
        loader = threading.Thread(
            target=lambda: load.append(
                run_wrk(base, alice, connections=8, duration_s=25, workdir=tmp_path)
            )
        )
        loader.start()
        time.sleep(5)
        answer = httpx.post(
            f"{base}/admin/reload", headers=admin, json={"model": str(v2)}, timeout=600
        )
        loader.join(timeout=300)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["previous_version"] == original
        assert body["model"]["model_version"] == "v2-all-workers"
        assert len(body["workers"]) == 2
        assert {w["model_version"] for w in body["workers"]} == {"v2-all-workers"}
        assert {w["pid"] for w in body["workers"]} == set(before)
        result = load[0]
        logger.info("wrk during the reload: %s; reload answered %s", result.summary(), body)
        assert result.ok > 0 and set(result.statuses) == {200}, result.summary()
        assert not any(result.socket_errors.values()), result.summary()
        assert set(_versions_on_fresh_connections(base, alice)) == {"v2-all-workers"}

        # a bundle that cannot load: 422 from the receiving worker, nothing published
        failed = httpx.post(
            f"{base}/admin/reload", headers=admin, json={"model": str(broken)}, timeout=600
        )
        assert failed.status_code == 422, failed.text
        assert "still serving version v2-all-workers" in failed.json()["detail"]
        assert set(_versions_on_fresh_connections(base, alice)) == {"v2-all-workers"}
        desired = json.loads((run_dir / "desired-champion.json").read_text())
        assert desired["model_version"] == "v2-all-workers" and desired["generation"] == 1

        # a worker killed outright comes back with the published model, not RAKUTEN_MODEL_PATH
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            live = _wait_for_workers(run_dir, 2, server)
            if victim not in live and len(live) == 2:
                break
            time.sleep(0.5)
        replacement = set(live) - set(before)
        assert len(replacement) == 1, live
        assert live[replacement.pop()]["model_version"] == "v2-all-workers"
        assert set(_versions_on_fresh_connections(base, alice)) == {"v2-all-workers"}
    finally:
        server.close()
