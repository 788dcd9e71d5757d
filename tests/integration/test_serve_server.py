"""``rakuten-serve`` for real: CLI user management, ``run --workers 2`` behind one port with
Redis-shared rate limits, request ids, and JSON access logs without secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.paths import REPO_ROOT
from tests.utils.redis import RedisServer
from tests.utils.serve_app import PASSWORD, ServeProcess, jpeg_bytes, serve_settings, settings_env
from tests.utils.serve_fixtures import serve_bundle_dir

__all__ = ["serve_bundle_dir"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")} | env
    return subprocess.run(
        [sys.executable, "-m", "rakuten_serve", *args],
        input=stdin,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


def test_cli_users(tmp_path: Path) -> None:
    env = settings_env(serve_settings(tmp_path))
    assert _cli(env, "db", "upgrade").returncode == 0
    created = _cli(
        env,
        "users",
        "create",
        "carol",
        "-s",
        "predict",
        "-s",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert "admin predict" in created.stdout
    duplicate = _cli(env, "users", "create", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    too_long = _cli(env, "users", "create", "dave", "--password-stdin", stdin="ü" * 40 + "\n")
    assert too_long.returncode == 2 and "72 bytes" in too_long.stderr
    bad_scope = _cli(
        env, "users", "create", "erin", "-s", "root", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert bad_scope.returncode == 2 and "unknown scope" in bad_scope.stderr
    assert _cli(env, "users", "disable", "carol").returncode == 0
    assert _cli(env, "users", "disable", "nobody").returncode == 2
    listing = _cli(env, "users", "list").stdout.splitlines()
    assert listing == ["carol\tadmin predict\tdisabled"]


def test_two_workers_share_redis_limits_and_the_cores_and_log_without_secrets(
    redis_server: RedisServer, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        redis_url=redis_server.url,
        predict_rate_limit="6/minute",
    )
    env = settings_env(settings)
    assert _cli(env, "db", "upgrade").returncode == 0
    assert (
        _cli(env, "users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode
        == 0
    )
    server = ServeProcess(env, workers=2, log_path=tmp_path / "server.out")
    try:
        cold_start = server.wait_ready()
        assert cold_start < 180
        server.wait_workers()
        for pid in server.worker_pids():  # each worker sizes its model threads for 2 workers
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"RAKUTEN_WORKERS=2" in environ
            # the bundle has serving/: the worker runs ONNX Runtime and never loads TensorFlow
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "onnxruntime" in maps
            assert "tensorflow" not in maps
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            token = client.post("/token", data={"username": "alice", "password": PASSWORD}).json()[
                "access_token"
            ]
            headers = {"Authorization": f"Bearer {token}"}
            statuses = []
            for i in range(8):
                # a fresh connection each time, so both workers get requests
                response = httpx.post(
                    f"{server.base_url}/predict",
                    headers=headers,
                    data={"designation": f"Piscine {i}"},
                    files={"image": ("p.jpg", jpeg_bytes(), "image/jpeg")},
                    timeout=30,
                )
                statuses.append(response.status_code)
                assert response.headers["x-request-id"]
            assert statuses == [200] * 6 + [429] * 2
    finally:
        server.close()  # the access line is written after the response: read the log after exit
    log_lines = [
        json.loads(line) for line in (settings.log_dir / "serve.log").read_text().splitlines()
    ]
    access = [
        line
        for line in log_lines
        if line["name"] == "rakuten_serve.access" and line["path"] == "/predict"
    ]
    assert len(access) == 8
    assert sorted(line["status"] for line in access) == [200] * 6 + [429] * 2
    text = (settings.log_dir / "serve.log").read_text()
    assert token not in text and PASSWORD not in text
    loads = [line["message"] for line in log_lines if "runtime (resolve" in line["message"]]
    assert len(loads) == 2 and all("onnx runtime" in m for m in loads), loads
