"""slowapi limits with in-memory storage: per user on /predict, per client on /token."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    bearer,
    get_token,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = pytest.mark.slow


def test_predict_limit_is_per_user_with_retry_after(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path, model_path=str(serve_bundle_dir), predict_rate_limit="3/minute"
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        alice, bob = bearer(get_token(client, "alice")), bearer(get_token(client, "bob"))
        codes = [
            client.post("/predict", headers=alice, data={"designation": "Livre"}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 200]
        refused = client.post("/predict", headers=alice, data={"designation": "Livre"})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        body = refused.json()
        assert body["error"] == "rate_limited"
        assert "3 per 1 minute" in body["detail"]
        # another user has their own budget
        assert (
            client.post("/predict", headers=bob, data={"designation": "Livre"}).status_code == 200
        )
        # unauthenticated calls are refused before counting
        assert client.post("/predict", data={"designation": "Livre"}).status_code == 401
        metrics = client.get("/metrics").text
        assert 'rakuten_rate_limited_requests_total{route="/predict"} 1.0' in metrics
        assert (
            'rakuten_http_requests_total{method="POST",route="/predict",status="429"} 1.0'
            in metrics
        )


def test_token_limit_is_per_client_and_counts_failures(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path, model_path=str(serve_bundle_dir), token_rate_limit="2/minute"
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        assert (
            client.post("/token", data={"username": "alice", "password": "wrong-pass"}).status_code
            == 401
        )
        assert (
            client.post("/token", data={"username": "alice", "password": PASSWORD}).status_code
            == 200
        )
        third = client.post("/token", data={"username": "alice", "password": PASSWORD})
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        assert third.json()["error"] == "rate_limited"


def test_a_service_account_cannot_be_locked_out_or_guessed_through_the_proxy(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        token_rate_limit="100/minute",
        token_user_rate_limit="3/minute",
        service_accounts="bob",  # as the environment gives it: comma-separated names
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    edge = {"X-Rakuten-Edge": "1"}
    with TestClient(create_app(settings, shared_predictor)) as client:
        # through the proxy: refused even with the right password, and no failure counted
        for password in ("guess-1", "guess-2", "guess-3", "guess-4", PASSWORD):
            refused = client.post(
                "/token", data={"username": "bob", "password": password}, headers=edge
            )
            assert refused.status_code == 401, refused.text
        assert 'reason="service_account_at_edge"} 5.0' in client.get("/metrics").text
        # from inside the stack: still able to log in (the strangers locked nothing)
        inside = client.post("/token", data={"username": "bob", "password": PASSWORD})
        assert inside.status_code == 200, inside.text
        # an ordinary user is unaffected by the header, and its failures still count
        for _ in range(3):
            client.post("/token", data={"username": "alice", "password": "x-wrong"}, headers=edge)
        locked = client.post(
            "/token", data={"username": "alice", "password": PASSWORD}, headers=edge
        )
        assert locked.status_code == 429


def test_the_interactive_docs_are_served_in_development_only(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    for environment, status in (("development", 200), ("production", 404)):
        (tmp_path / environment).mkdir()
        settings = serve_settings(
            tmp_path / environment,
            model_path=str(serve_bundle_dir),
            environment=environment,
            jwt_secret=secrets.token_urlsafe(48),  # production refuses the tests' published key
        )
        migrate_and_add_users(settings, DEFAULT_USERS)
        with TestClient(create_app(settings, shared_predictor)) as client:
            assert client.get("/docs").status_code == status, environment
            assert client.get("/redoc").status_code == status, environment
            assert client.get("/openapi.json").status_code == 200
