"""Serve's telemetry through a real app: what each event adds to /metrics, and the off switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.metrics import AUTH_FAILURE_REASONS
from rakuten_serve.predictor import Predictor
from rakuten_serve.settings import ServeSettings
from rakuten_serve.telemetry import PrometheusTelemetry
from rakuten_serve.users import set_disabled
from tests.utils.prom_text import sample_labels, sample_value
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    bearer,
    get_token,
    jpeg_bytes,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = pytest.mark.slow


def _auth_failures(client: TestClient) -> dict[str, float | None]:
    text = client.get("/metrics").text
    return {
        reason: sample_value(text, "rakuten_auth_failures_total", reason=reason)
        for reason in AUTH_FAILURE_REASONS
    }


def test_every_auth_failure_reason_is_counted_once(
    client: TestClient, settings: ServeSettings
) -> None:
    assert _auth_failures(client) == dict.fromkeys(AUTH_FAILURE_REASONS, 0.0)
    form = {"designation": "Piscine"}
    assert client.post("/token", data={"username": "alice", "password": "nope"}).status_code == 401
    assert client.post("/predict", data=form).status_code == 401
    assert client.post("/predict", headers=bearer("not.a.jwt"), data=form).status_code == 401
    alice = get_token(client, "alice")
    assert client.post("/admin/reload", headers=bearer(alice), json={}).status_code == 403
    bob = get_token(client, "bob")
    engine = build_engine(settings.database_url)
    set_disabled(session_factory(engine), "bob", disabled=True)
    engine.dispose()
    assert client.post("/predict", headers=bearer(bob), data=form).status_code == 401
    settings.service_accounts = frozenset({"carol"})  # read per request
    edge = {"X-Rakuten-Edge": "1"}  # what the proxy adds: a service account's login is refused
    login = {"username": "carol", "password": "anything"}
    assert client.post("/token", data=login, headers=edge).status_code == 401
    assert _auth_failures(client) == dict.fromkeys(AUTH_FAILURE_REASONS, 1.0)


def test_predictions_requests_and_model_identity(client: TestClient) -> None:
    alice = bearer(get_token(client, "alice"))
    codes = []
    for text in ("Piscine gonflable", "Coussin velours", "Console de jeu"):
        answer = client.post(
            "/predict",
            headers=alice,
            data={"designation": text},
            files={"image": ("p.jpg", jpeg_bytes(), "image/jpeg")},
        )
        assert answer.status_code == 200
        codes.append(str(answer.json()["prdtypecode"]))
    model = client.get("/model").json()
    text = client.get("/metrics").text
    for code in set(codes):
        assert sample_value(text, "rakuten_predictions_total", prdtypecode=code) == codes.count(
            code
        )
    assert len(sample_labels(text, "rakuten_predictions_total")) == 27  # every class, from 0
    assert sample_value(text, "rakuten_prediction_confidence_count") == 3
    assert sample_value(text, "rakuten_batch_size_sum") == 3
    assert (
        sample_value(
            text, "rakuten_http_requests_total", route="/predict", method="POST", status="200"
        )
        == 3
    )
    # the scrape itself is the only request in flight
    assert sample_value(text, "rakuten_http_requests_in_flight") == 1
    assert sample_value(text, "rakuten_model_ready") == 1
    assert sample_labels(text, "rakuten_model_info") == [
        {
            "name": model["model_name"],
            "version": model["model_version"],
            "run_id": model["mlflow_run_id"] or "",
            "source": model["source"],
        }
    ]
    assert "rakuten_model_info{" in text and "# TYPE rakuten_model_info gauge" in text


def test_not_ready_without_a_model(tmp_path: Path) -> None:
    settings = serve_settings(tmp_path, model_path=str(tmp_path / "missing"))
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    assert sample_value(text, "rakuten_model_ready") == 0
    assert sample_labels(text, "rakuten_model_info") == []


def test_metrics_can_be_switched_off(tmp_path: Path, shared_predictor: Predictor) -> None:
    settings = serve_settings(tmp_path, metrics_enabled=False)
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        assert client.get("/metrics").status_code == 404
        token = client.post("/token", data={"username": "alice", "password": PASSWORD})
        answer = client.post(
            "/predict",
            headers=bearer(token.json()["access_token"]),
            data={"designation": "Piscine"},
        )
        assert answer.status_code == 200


def test_each_app_has_its_own_registry() -> None:
    first, second = PrometheusTelemetry(), PrometheusTelemetry()
    first.rate_limited("/predict")
    assert not first.multiprocess
    assert sample_value(first.exposition().decode(), "rakuten_rate_limited_requests_total") == 1
    assert sample_value(second.exposition().decode(), "rakuten_rate_limited_requests_total") is None
