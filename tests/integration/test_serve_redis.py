"""Rate-limit counters in a real redis-server are shared by several app instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.prom_text import sample_value
from tests.utils.redis import RedisServer
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    migrate_and_add_users,
    serve_settings,
)
from tests.utils.serve_fixtures import serve_bundle_dir, shared_predictor

__all__ = ["serve_bundle_dir", "shared_predictor"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


def test_two_instances_share_the_predict_budget(
    redis_server: RedisServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        redis_url=redis_server.url,
        predict_rate_limit="4/minute",
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with (
        TestClient(create_app(settings, shared_predictor)) as one,
        TestClient(create_app(settings, shared_predictor)) as two,
    ):
        headers = bearer(get_token(one))
        form = {"designation": "Chaise de jardin"}
        statuses = [
            c.post("/predict", headers=headers, data=form).status_code for c in (one, two, one, two)
        ]
        assert statuses == [200, 200, 200, 200]
        for c in (one, two):
            refused = c.post("/predict", headers=headers, data=form)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
        keys = redis.Redis.from_url(redis_server.url).keys("*")
        assert any(b"user:alice" in key for key in keys), keys


def test_redis_outage_falls_back_to_memory_and_is_counted(
    redis_server: RedisServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        redis_url=redis_server.url,
        predict_rate_limit="100/minute",
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        headers = bearer(get_token(client))
        form = {"designation": "Chaise de jardin"}
        assert client.post("/predict", headers=headers, data=form).status_code == 200
        errors = "rakuten_rate_limit_backend_errors_total"
        assert sample_value(client.get("/metrics").text, errors) == 0
        redis_server.close()
        for _ in range(3):  # served from per-process counters; the switch is counted once
            assert client.post("/predict", headers=headers, data=form).status_code == 200
        assert sample_value(client.get("/metrics").text, errors) == 1
