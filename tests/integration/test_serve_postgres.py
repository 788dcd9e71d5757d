"""Recording against a real PostgreSQL server, including an outage in the middle.

Predictions answered while Postgres is stopped are still answered quickly, spooled to disk, and
written exactly once after the server is back; readiness reports the outage meanwhile. A request
the proxy retried on the other replica (same ``X-Request-ID``) leaves one record, also when the
two replicas write it at the same moment.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.db.inserts import insert_new
from rakuten_serve.db.migrate import current_revision, upgrade
from rakuten_serve.predictor import Predictor
from tests.utils.postgres import PostgresServer, running_postgres
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
    with running_postgres() as server:
        yield server


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


PROXY_ID = "0123456789abcdef0123456789abcdef"  # the shape of nginx's $request_id


def test_a_retried_predict_answered_by_the_other_replica_is_recorded_once(
    postgres: PostgresServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    """The proxy retries a POST on the other replica with the same ``X-Request-ID``."""
    replicas = [
        serve_settings(tmp_path / name, model_path=str(serve_bundle_dir), database_url=postgres.url)
        for name in ("one", "two")
    ]
    migrate_and_add_users(replicas[0], DEFAULT_USERS)
    with (
        TestClient(create_app(replicas[0], shared_predictor)) as one,
        TestClient(create_app(replicas[1], shared_predictor)) as two,
    ):
        headers = bearer(get_token(one))
        answers = [
            client.post(
                "/predict",
                headers={**headers, "X-Request-ID": PROXY_ID},
                data={"designation": "Piscine tubulaire ronde"},
            )
            for client in (one, two)
        ]
        invalid = two.post(
            "/predict",
            headers={**headers, "X-Request-ID": "not an id; DROP TABLE predictions"},
            data={"designation": "Livre"},
        )
        for client in (one, two):
            assert client.app.state.serve.recorder.wait_idle(15)  # type: ignore[attr-defined]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["request_id"] for a in answers] == [PROXY_ID, PROXY_ID]
    assert [a.headers["x-request-id"] for a in answers] == [PROXY_ID, PROXY_ID]
    assert _count(postgres.url, [PROXY_ID]) == 1
    assert invalid.status_code == 200, invalid.text
    replaced = invalid.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced) and replaced != PROXY_ID
    assert _count(postgres.url, [replaced]) == 1
    assert not list(tmp_path.glob("*/spool/*.jsonl"))  # no batch failed on the primary key


def test_two_replicas_inserting_one_request_id_at_once_leave_one_row(
    postgres: PostgresServer,
) -> None:
    """The database settles the race: the second insert waits for the first, then skips."""
    upgrade(postgres.url)
    engine = build_engine(postgres.url)
    row = {
        "request_id": PROXY_ID,
        "username": "alice",
        "created_at": datetime.now(UTC),
        "model_name": "m",
        "model_version": "1",
        "designation": "Piscine",
        "prdtypecode": 2583,
        "probability": 0.9,
        "top_k": [],
        "latency_ms": 1.0,
    }
    second: list[set[str]] = []
    try:
        with engine.begin() as first:
            assert insert_new(first, Prediction, [row]) == {PROXY_ID}
            other = threading.Thread(
                target=lambda: second.append(_insert_in_own_transaction(engine, row))
            )
            other.start()
            other.join(1.0)
            assert other.is_alive(), "the second insert did not wait for the first"
        other.join(15)
        assert second == [set()]
    finally:
        engine.dispose()
    assert _count(postgres.url, [PROXY_ID]) == 1


def _insert_in_own_transaction(engine: Engine, row: dict[str, Any]) -> set[str]:
    with engine.begin() as connection:
        return insert_new(connection, Prediction, [{**row, "latency_ms": 2.0}])
