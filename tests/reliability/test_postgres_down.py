"""PostgreSQL stopped under a running API: 503s where the database is needed, 200s recorded.

Decision (docs/reliability.md): ``/predict`` keeps answering for users seen within
``RAKUTEN_USER_STALE_MAX_S`` (their last known state; records are spooled and written once the
database is back); anyone else gets 503 + Retry-After, like ``/token`` and ``/feedback``;
``/health/ready`` says the database is unreachable. Never a 500, never a dropped connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.predictor import Predictor
from tests.utils.live_server import live_server, local_port
from tests.utils.postgres import PostgresServer, running_postgres
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]
logger = logging.getLogger(__name__)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def _token(http: httpx.Client, user: str) -> dict[str, str]:
    answer = http.post("/token", data={"username": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert int(response.headers["retry-after"]) >= 1


def record_counts(url: str, ids: list[str]) -> dict[str, int]:
    engine = build_engine(url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Prediction.request_id, func.count())
                .where(Prediction.request_id.in_(ids))
                .group_by(Prediction.request_id)
            ).all()
            return {rid: int(n) for rid, n in rows}
    finally:
        engine.dispose()


def test_postgres_outage(
    postgres: PostgresServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        database_url=postgres.url,
        user_stale_max_s=600,
        user_cache_seconds=0,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    app = create_app(settings, shared_predictor)
    ok_ids: list[str] = []
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        alice, bob = _token(http, "alice"), _token(http, "bob")
        first = http.post("/predict", headers=alice, data={"designation": "Lampe"})
        assert first.status_code == 200
        ok_ids.append(first.json()["request_id"])
        port = local_port(first)

        postgres.stop()
        ready = http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["database"] is False
        _unavailable(http.post("/token", data={"username": "alice", "password": PASSWORD}))
        _unavailable(http.post("/predict", headers=bob, data={"designation": "Lampe"}))
        for i in range(20):
            files = {"image": ("a.jpg", jpeg_bytes(color=(i * 10, 90, 30)), "image/jpeg")}
            answer = http.post(
                "/predict", headers=alice, data={"designation": f"Lampe {i}"}, files=files
            )
            assert answer.status_code == 200, answer.text
            ok_ids.append(answer.json()["request_id"])
        feedback = http.post(
            "/feedback", headers=alice, json={"request_id": ok_ids[-1], "prdtypecode": 2583}
        )
        _unavailable(feedback)
        last = http.get("/health/live")
        assert local_port(last) == port  # one keep-alive connection throughout

        postgres.start()
        restarted = time.monotonic()
        deadline = restarted + 60
        while http.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "not ready 60 s after PostgreSQL came back"
            time.sleep(0.2)
        ready_after_s = time.monotonic() - restarted
        # a user never seen before waits out the lookup pause (1 s after the last failure)
        back = http.post("/predict", headers=bob, data={"designation": "Lampe"})
        while back.status_code == 503:
            assert time.monotonic() < deadline, back.text
            time.sleep(int(back.headers["retry-after"]) / 5)
            back = http.post("/predict", headers=bob, data={"designation": "Lampe"})
        assert back.status_code == 200, back.text
        ok_ids.append(back.json()["request_id"])
        assert app.state.serve.recorder.wait_idle(60)
        written_after_s = time.monotonic() - restarted
    counts = record_counts(postgres.url, ok_ids)
    logger.info(
        "postgres outage: %d answers 200, %d records, ready %.1fs and all written %.1fs after "
        "the restart",
        len(ok_ids),
        sum(counts.values()),
        ready_after_s,
        written_after_s,
    )
    assert counts == dict.fromkeys(ok_ids, 1)


def test_stale_user_state_is_bounded(
    postgres: PostgresServer, tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    """With ``RAKUTEN_USER_STALE_MAX_S=0`` a user seen a moment ago is not served either."""
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        database_url=postgres.url,
        user_stale_max_s=0,
        user_cache_seconds=0,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    app = create_app(settings, shared_predictor)
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        alice = _token(http, "alice")
        assert (
            http.post("/predict", headers=alice, data={"designation": "Lampe"}).status_code == 200
        )
        postgres.stop()
        _unavailable(http.post("/predict", headers=alice, data={"designation": "Lampe"}))
