"""Redis stopped under a running API: rate limits fail open to per-process counters, with a
warning and ``rakuten_rate_limit_backend_errors_total``, and go back to Redis when it returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.live_server import live_server
from tests.utils.redis import RedisServer
from tests.utils.serve_app import DEFAULT_USERS, PASSWORD, migrate_and_add_users, serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]
logger = logging.getLogger(__name__)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


def _statuses(http: httpx.Client, headers: dict[str, str], n: int) -> list[int]:
    return [
        http.post("/predict", headers=headers, data={"designation": "Tapis"}).status_code
        for _ in range(n)
    ]


def _backend_errors(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("rakuten_rate_limit_backend_errors_total "):
            return float(line.split()[1])
    raise AssertionError("rakuten_rate_limit_backend_errors_total missing")


def test_redis_outage_fails_open_and_recovers(
    redis_server: RedisServer,
    tmp_path: Path,
    serve_bundle_dir: Path,
    shared_predictor: Predictor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        redis_url=redis_server.url,
        predict_rate_limit="3/minute",
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    app = create_app(settings, shared_predictor)
    store = redis.Redis(port=redis_server.port)
    caplog.set_level(logging.WARNING, logger="rakuten_serve.ratelimit")
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        tokens = {}
        for user in ("alice", "bob"):
            answer = http.post("/token", data={"username": user, "password": PASSWORD})
            tokens[user] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert _statuses(http, tokens["alice"], 4) == [200, 200, 200, 429]
        assert any(b"user:alice" in key for key in store.keys())
        assert _backend_errors(http) == 0

        redis_server.stop()
        # fail open to in-memory counters: the API answers, the limit still holds per process
        assert _statuses(http, tokens["alice"], 4) == [200, 200, 200, 429]
        assert _backend_errors(http) >= 1
        assert any(
            r.name == "rakuten_serve.ratelimit" and "unreachable" in r.getMessage()
            for r in caplog.records
        )

        redis_server.start()
        restarted = time.monotonic()
        store = redis.Redis(port=redis_server.port)
        deadline = time.monotonic() + 90
        while not any(b"user:bob" in key for key in store.keys()):
            assert time.monotonic() < deadline, "limits did not go back to Redis"
            assert http.post(
                "/predict", headers=tokens["bob"], data={"designation": "Tapis"}
            ).status_code in (200, 429)
            time.sleep(0.5)
        logger.info(
            "redis: limits back in Redis %.1fs after it restarted", time.monotonic() - restarted
        )
        # counted in Redis again: a second app instance sharing it sees the same budget
        other = create_app(settings, shared_predictor)
        with live_server(other) as other_url, httpx.Client(base_url=other_url, timeout=60) as two:
            root = two.post("/token", data={"username": "root", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {root.json()['access_token']}"}
            assert _statuses(http, headers, 2) == [200, 200]
            assert _statuses(two, headers, 2) == [200, 429]
