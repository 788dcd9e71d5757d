"""Authentication and authorisation: tokens (good, expired, tampered, wrong algorithm), scopes,
disabled users, bcrypt's 72-byte limit and the production secret rules."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from pydantic import SecretStr

from rakuten_core.errors import ConfigurationError
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.settings import ServeSettings
from rakuten_serve.tokens import create_access_token
from rakuten_serve.users import set_disabled
from tests.utils.serve_app import PASSWORD, TEST_SECRET, bearer, get_token, serve_settings

pytestmark = pytest.mark.slow

FORM = {"designation": "Piscine tubulaire ronde 3,66 m"}


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _predict(client: TestClient, token: str) -> tuple[int, dict[str, object]]:
    response = client.post("/predict", headers=bearer(token), data=FORM)
    return response.status_code, response.json()


def test_good_token_predicts_and_names_the_user(client: TestClient) -> None:
    response = client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scopes"] == ["label", "predict"]  # no `scope` asked: all of alice's
    assert body["expires_in"] == 30 * 60
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["scopes"] == ["label", "predict"]
    assert claims["exp"] - claims["iat"] == 30 * 60
    status, out = _predict(client, body["access_token"])
    assert status == 200
    assert out["prdtypecode"] == 2583  # the small real model knows pools


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("alice", "")],
)
def test_bad_credentials_get_401(client: TestClient, username: str, password: str) -> None:
    response = client.post("/token", data={"username": username, "password": password})
    assert response.status_code in (401, 422)
    if password:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"


def test_password_over_bcrypt_limit_is_a_clear_422(client: TestClient) -> None:
    response = client.post("/token", data={"username": "alice", "password": "é" * 40})
    assert response.status_code == 422
    assert "72 bytes" in response.json()["detail"]


def test_missing_token_and_token_in_query_string_are_refused(client: TestClient) -> None:
    token = get_token(client)
    assert client.post("/predict", data=FORM).status_code == 401
    in_url = client.post(f"/predict?access_token={token}&token={token}", data=FORM)
    assert in_url.status_code == 401
    assert in_url.headers["www-authenticate"].startswith("Bearer")


def test_expired_token_is_refused(client: TestClient) -> None:
    token = create_access_token(
        "alice",
        ["predict"],
        key=SecretStr(TEST_SECRET),
        expires_in=timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(minutes=10),
    )
    status, body = _predict(client, token)
    assert status == 401
    assert body["detail"] == "invalid or expired token"


def test_tampered_payload_is_refused(client: TestClient) -> None:
    header, _payload, signature = get_token(client).split(".")
    forged = _b64({"sub": "root", "scopes": ["predict", "admin"], "iat": 1, "exp": 4_102_444_800})
    assert _predict(client, f"{header}.{forged}.{signature}")[0] == 401
    # and a token signed with another key
    other = create_access_token(
        "alice", ["predict"], key=SecretStr("x" * 48), expires_in=timedelta(minutes=5)
    )
    assert _predict(client, other)[0] == 401


def test_alg_none_and_other_algorithms_are_refused(client: TestClient) -> None:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "alice", "scopes": ["predict"], "iat": now, "exp": now + 600}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert _predict(client, unsigned)[0] == 401
    hs512 = jwt.encode(claims, TEST_SECRET, algorithm="HS512")
    assert _predict(client, hs512)[0] == 401
    # the same claims signed HS256 with the right key are accepted: the refusals above are
    # about the algorithm, not the claims
    assert _predict(client, jwt.encode(claims, TEST_SECRET, algorithm="HS256"))[0] == 200


def test_token_without_exp_is_refused(client: TestClient) -> None:
    token = jwt.encode({"sub": "alice", "scopes": ["predict"], "iat": 1}, TEST_SECRET, "HS256")
    assert _predict(client, token)[0] == 401


def test_missing_scope_is_403(client: TestClient) -> None:
    alice = get_token(client, "alice")
    response = client.post("/admin/reload", headers=bearer(alice), json={})
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    # root asks only for "admin": cannot predict with that token
    admin_only = get_token(client, "root", scope="admin")
    status, body = _predict(client, admin_only)
    assert status == 403
    assert "predict" in str(body["detail"])
    # alice asking for admin gets only what she has
    response = client.post(
        "/token", data={"username": "alice", "password": PASSWORD, "scope": "predict admin"}
    )
    assert response.json()["scopes"] == ["predict"]


def test_disabled_user_cannot_log_in_nor_use_an_old_token(
    client: TestClient, settings: ServeSettings
) -> None:
    token = get_token(client, "bob")
    assert _predict(client, token)[0] == 200
    engine = build_engine(settings.database_url)
    set_disabled(session_factory(engine), "bob", disabled=True)
    engine.dispose()
    assert _predict(client, token)[0] == 401
    login = client.post("/token", data={"username": "bob", "password": PASSWORD})
    assert login.status_code == 401


def test_production_refuses_missing_or_placeholder_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for secret in (None, "changeme", "secret", "short-but-real-9f8e7d"):
        settings = serve_settings(tmp_path, environment="production", jwt_secret=secret)
        with pytest.raises(ConfigurationError):
            create_app(settings)
    good = serve_settings(
        tmp_path, environment="production", jwt_secret="k" * 20 + "9f8e7d6c5b4a3210zz"
    )
    assert create_app(good).title


def test_development_without_secret_uses_a_random_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = serve_settings(tmp_path, environment="development", jwt_secret=None)
    second = serve_settings(tmp_path, environment="development", jwt_secret=None)
    assert first.signing_key().get_secret_value() != second.signing_key().get_secret_value()
    assert len(first.signing_key().get_secret_value()) >= 32
