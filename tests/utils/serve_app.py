"""Helpers for the serving tests: settings, users, tokens, images, a real uvicorn server."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.db.migrate import upgrade
from rakuten_serve.settings import ServeSettings
from rakuten_serve.users import create_user
from tests.utils.paths import REPO_ROOT
from tests.utils.postgres import free_port
from tests.utils.proc_stats import tree_cpu_seconds, worker_pids
from tests.utils.processes import stop_process, wait_http_ok

TEST_SECRET = "test-only-jwt-secret-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery staple"


def serve_settings(tmp_path: Path, **overrides: Any) -> ServeSettings:
    """Settings isolated in ``tmp_path`` (SQLite, spool, logs); no .env file is read."""
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": TEST_SECRET,
        "database_url": f"sqlite:///{tmp_path / 'serve.db'}",
        "record_spool_dir": tmp_path / "spool",
        "model_cache_dir": tmp_path / "models",
        "log_dir": tmp_path / "logs",
        "predict_rate_limit": "1000/minute",
        "feedback_rate_limit": "1000/minute",
        "token_rate_limit": "1000/minute",
        "batch_max_size": 8,
        "record_retry_initial_s": 0.2,
        "record_retry_max_s": 1.0,
        "user_cache_seconds": 0,
    }
    values.update(overrides)
    return ServeSettings(_env_file=None, **values)  # type: ignore[call-arg]


def migrate_and_add_users(settings: ServeSettings, users: Mapping[str, list[str]]) -> None:
    """Create the schema and one user per name (password :data:`PASSWORD`)."""
    upgrade(settings.database_url)
    engine = build_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        for name, scopes in users.items():
            create_user(sessions, name, PASSWORD, scopes)
    finally:
        engine.dispose()


# alice and bob ask and label; root is an admin who does not label (admin does not imply label)
DEFAULT_USERS = {
    "alice": ["predict", "label"],
    "root": ["predict", "admin"],
    "bob": ["predict", "label"],
}


def jpeg_bytes(
    size: tuple[int, int] = (120, 90), color: tuple[int, int, int] = (30, 120, 200)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (200, 10, 10, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def get_token(
    client: Any, username: str = "alice", password: str = PASSWORD, scope: str = ""
) -> str:
    data = {"username": username, "password": password}
    if scope:
        data["scope"] = scope
    response = client.post("/token", data=data)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ServeProcess:
    """``rakuten-serve run`` in a subprocess on a free loopback port, with its own env."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        log_path: Path,
        args: Sequence[str] = (),
    ) -> None:
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")}
        full_env.update(env)
        self._env = full_env
        full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rakuten_serve",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *args,
            ],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 180.0) -> float:
        """Seconds from process start to the first 200 from /health/ready."""
        ready = f"{self.base_url}/health/ready"
        wait_http_ok(self.process, ready, log_path=self.log_path, timeout_s=timeout_s)
        return time.monotonic() - self.started

    def wait_workers(self, timeout_s: float = 300.0, settle_s: float = 5.0) -> None:
        """Ready, with every worker process up and its model loaded and warmed up.

        The first ready answer comes from one worker; each worker loads its own model and, with
        the log at INFO, says so in the JSON log (``model ... loaded from``, with its ``pid``)
        after its warm-up. A quieter log (the benches run at WARNING, so that the access log
        costs nothing) has no such line: then it waits ``settle_s`` once every worker is up.
        """
        self.wait_ready(timeout_s)
        logged = logging.getLevelName(self._env.get("RAKUTEN_LOG_LEVEL", "INFO").upper())
        by_log = isinstance(logged, int) and logged <= logging.INFO
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.worker_pids()
            up = len(pids) >= self.workers
            if up and not by_log:
                time.sleep(settle_s if self.workers > 1 else 0)
                return
            loaded = self._model_loaded_pids() if up else set()
            if up and loaded.issuperset(pids):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.workers} workers with a model wanted: workers {pids}, "
                    f"loaded {sorted(loaded)}; log {self.log_path}"
                )
            time.sleep(0.2)

    def _model_loaded_pids(self) -> set[int]:
        log_file = Path(self._env.get("RAKUTEN_LOG_DIR", REPO_ROOT / "logs")) / "serve.log"
        if not log_file.exists():
            return set()
        pids = set()
        for line in log_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            if record.get("name") == "rakuten_serve.predictor" and " loaded from " in str(
                record.get("message")
            ):
                pids.add(int(record["pid"]))
        return pids

    def worker_pids(self) -> list[int]:
        return worker_pids(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU used so far by the server and its workers."""
        return tree_cpu_seconds(self.process.pid)

    def close(self) -> None:
        stop_process(self.process)
        self._log.close()


@contextmanager
def serve_process(
    env: Mapping[str, str], *, workers: int = 1, log_path: Path
) -> Iterator[ServeProcess]:
    server = ServeProcess(env, workers=workers, log_path=log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def settings_env(settings: ServeSettings, **extra: str) -> dict[str, str]:
    """The ``RAKUTEN_*`` environment reproducing ``settings`` in a subprocess."""
    env = {
        "RAKUTEN_ENVIRONMENT": settings.environment,
        "RAKUTEN_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "RAKUTEN_DATABASE_URL": settings.database_url,
        "RAKUTEN_RECORD_SPOOL_DIR": str(settings.record_spool_dir),
        "RAKUTEN_MODEL_CACHE_DIR": str(settings.model_cache_dir),
        "RAKUTEN_LOG_DIR": str(settings.log_dir),
        "RAKUTEN_MODEL_PATH": settings.model_path,
        "RAKUTEN_PREDICT_RATE_LIMIT": settings.predict_rate_limit,
        "RAKUTEN_FEEDBACK_RATE_LIMIT": settings.feedback_rate_limit,
        "RAKUTEN_TOKEN_RATE_LIMIT": settings.token_rate_limit,
        "RAKUTEN_BATCH_ENABLED": str(settings.batch_enabled).lower(),
        "RAKUTEN_BATCH_MAX_SIZE": str(settings.batch_max_size),
        "RAKUTEN_BATCH_MAX_WAIT_MS": str(settings.batch_max_wait_ms),
        "RAKUTEN_BATCH_QUEUE_SIZE": str(settings.batch_queue_size),
    }
    if settings.redis_url:
        env["RAKUTEN_REDIS_URL"] = settings.redis_url
    env.update(extra)
    return env
