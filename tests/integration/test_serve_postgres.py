"""Recording against a real PostgreSQL server, including an outage in the middle.

Predictions answered while Postgres is stopped are still answered quickly, spooled to disk, and
written exactly once after the server is back; readiness reports the outage meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.db.migrate import current_revision
from rakuten_serve.predictor import Predictor
from tests.utils.postgres import PostgresServer
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)
from tests.utils.serve_fixtures import serve_bundle_dir, shared_predictor

__all__ = ["serve_bundle_dir", "shared_predictor"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _count(url: str, ids: list[str]) -> int:
    engine = build_engine(url)
    try:
        with Session(engine) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Prediction)
                    .where(Prediction.request_id.in_(ids))
                )
                or 0
            )
    finally:
        engine.dispose()


def test_predictions_survive_a_postgres_outage(
    postgres: PostgresServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        database_url=postgres.url,
        user_cache_seconds=600,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    assert current_revision(postgres.url) == "0005"
    with TestClient(create_app(settings, shared_predictor)) as client:
        state = client.app.state.serve  # type: ignore[attr-defined]
        headers = bearer(get_token(client))  # the user lookup is cached from here on
        before = client.post("/predict", headers=headers, data={"designation": "Livre"}).json()[
            "request_id"
        ]
        assert state.recorder.wait_idle(15)
        assert _count(postgres.url, [before]) == 1

        postgres.stop()
        during: list[str] = []
        for i in range(5):
            started = time.perf_counter()
            response = client.post(
                "/predict",
                headers=headers,
                data={"designation": f"Piscine {i}"},
                files={"image": ("p.jpg", jpeg_bytes(), "image/jpeg")},
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            assert elapsed < 2.0  # the response never waits for the database
            during.append(response.json()["request_id"])
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["database"] is False
        deadline = time.monotonic() + 15
        while not list(settings.record_spool_dir.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(settings.record_spool_dir.glob("*.jsonl")), "records were not spooled"
        assert "rakuten_db_write_failures_total 0.0" not in client.get("/metrics").text

        postgres.start()
        assert state.recorder.wait_idle(30), "spooled records were not written after the restart"
        assert _count(postgres.url, during) == 5
        assert _count(postgres.url, [before, *during]) == 6
        assert client.get("/health/ready").status_code == 200
        after = client.post("/predict", headers=headers, data={"designation": "Livre"}).json()[
            "request_id"
        ]
        assert state.recorder.wait_idle(15)
        assert _count(postgres.url, [after]) == 1
    assert not list(settings.record_spool_dir.glob("*.jsonl"))
