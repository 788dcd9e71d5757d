"""The request id: the proxy's ``X-Request-ID`` when usable, and one record per id.

The proxy sets ``X-Request-ID`` once per client request and keeps it when it retries the request
on the other replica; serve takes it (or makes one when it is absent or unusable), and the
prediction record keyed by it is written once whichever replicas recorded it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from rakuten_core.logs import request_id
from rakuten_core.records import Prediction
from rakuten_serve.db.engine import build_engine
from rakuten_serve.db.migrate import upgrade
from rakuten_serve.db.recorder import PredictionRecorder
from rakuten_serve.middleware import RequestContextMiddleware
from rakuten_serve.telemetry import Telemetry

NGINX_ID = "5f0c6b1e9a8d4b7c8e2f1a3b4c5d6e7f"  # nginx's $request_id: 32 hex digits


def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"request_id": request_id.get()})


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Route("/echo", _echo)])
    return TestClient(RequestContextMiddleware(app, Telemetry()))


@pytest.mark.parametrize(
    "given",
    [
        NGINX_ID,
        "0b7e9c3a-5d2f-4e1b-9a8c-7d6e5f4a3b2c",  # a UUID with dashes
        "A" * 16,  # the shortest accepted
        "z_" * 32,  # the longest accepted: the record's key is String(64)
    ],
)
def test_a_usable_request_id_is_taken(client: TestClient, given: str) -> None:
    response = client.get("/echo", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    assert response.json()["request_id"] == given


@pytest.mark.parametrize(
    "given",
    [
        "",
        "short-id",  # under 16 characters: two clients could pick the same word
        "a" * 65,  # over the record key's 64
        "a" * 20 + " " + "b" * 20,
        "a" * 20 + '"; DROP TABLE predictions; --',
        "../../../etc/passwd-0000",
        "caf\u00e9-caf\u00e9-caf\u00e9-caf\u00e9",  # sent as Latin-1 bytes
    ],
)
def test_an_unusable_request_id_is_replaced(client: TestClient, given: str) -> None:
    response = client.get("/echo", headers={"X-Request-ID": given.encode("latin-1")})
    rid = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert rid != given and response.json()["request_id"] == rid


def test_without_the_header_each_request_gets_a_new_id(client: TestClient) -> None:
    ids = {client.get("/echo").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)


def _record(rid: str, *, latency_ms: float) -> dict[str, Any]:
    return {
        "request_id": rid,
        "username": "alice",
        "created_at": datetime.now(UTC),
        "model_name": "m",
        "model_version": "1",
        "designation": "Piscine",
        "description": None,
        "productid": None,
        "imageid": None,
        "image_sha256": None,
        "image_bytes": None,
        "prdtypecode": 2583,
        "probability": 0.9,
        "top_k": [{"prdtypecode": 2583, "probability": 0.9}],
        "latency_ms": latency_ms,
    }


def test_two_replicas_recording_one_request_id_leave_one_row(tmp_path: Path) -> None:
    """A POST retried on the other replica: both recorded it under the proxy's id."""
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    engine = build_engine(url)
    replicas = [
        PredictionRecorder(engine, telemetry=Telemetry(), spool_dir=tmp_path / f"spool-{i}")
        for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.start()
        replicas[0].submit(_record(NGINX_ID, latency_ms=11.0))
        assert replicas[0].wait_idle(10)
        replicas[1].submit(_record(NGINX_ID, latency_ms=22.0))
        replicas[1].submit(_record("f" * 32, latency_ms=33.0))
        assert replicas[1].wait_idle(10)
        with Session(engine) as session:
            rows = {r.request_id: r.latency_ms for r in session.scalars(select(Prediction))}
    finally:
        for replica in replicas:
            replica.stop()
        engine.dispose()
    assert rows == {NGINX_ID: 11.0, "f" * 32: 33.0}  # the first write wins, nothing is spooled
    assert not list(tmp_path.glob("spool-*/*.jsonl"))
