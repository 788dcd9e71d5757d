"""Forged, expired, misplaced and under-scoped tokens: 401/403 with nothing leaked."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jose import jwt
from pydantic import SecretStr

from rakuten_serve.settings import ServeSettings
from rakuten_serve.tokens import create_access_token
from rakuten_serve.users import set_disabled
from tests.utils.serve_app import TEST_SECRET, bearer, get_token

pytestmark = [pytest.mark.slow]

GENERIC = "invalid or expired token"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {"sub": "alice", "scopes": ["predict"], "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _forged() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
        "alg-none-upper": f"{_b64({'alg': 'NONE', 'typ': 'JWT'})}.{_b64(_claims())}.",
        "other-key": jwt.encode(_claims(), "another-secret-" * 4, algorithm="HS256"),
        "hs512-right-key": jwt.encode(_claims(), TEST_SECRET, algorithm="HS512"),
        "rs256": jwt.encode(_claims(), _rsa_pem().decode(), algorithm="RS256"),
        "expired": create_access_token(
            "alice",
            ["predict"],
            key=SecretStr(TEST_SECRET),
            expires_in=timedelta(minutes=5),
            now=now - timedelta(hours=1),
        ),
        "not-yet-valid-nbf": jwt.encode(
            _claims(nbf=int((now + timedelta(hours=1)).timestamp())), TEST_SECRET, "HS256"
        ),
        "issued-in-the-future": create_access_token(
            "alice",
            ["predict"],
            key=SecretStr(TEST_SECRET),
            expires_in=timedelta(minutes=5),
            now=now + timedelta(hours=1),
        ),
        "missing-sub": jwt.encode(_claims(sub=None), TEST_SECRET, algorithm="HS256"),
        "missing-exp": jwt.encode(_claims(exp=None), TEST_SECRET, algorithm="HS256"),
        "sub-not-a-string": jwt.encode(_claims(sub=42), TEST_SECRET, algorithm="HS256"),
        "tampered-payload": "{}.{}.{}".format(
            *[
                part if i != 1 else _b64(_claims(scopes=["predict", "admin"]))
                for i, part in enumerate(
                    create_access_token(
                        "alice",
                        ["predict"],
                        key=SecretStr(TEST_SECRET),
                        expires_in=timedelta(minutes=5),
                    ).split(".")
                )
            ]
        ),
        "garbage": "not.a.jwt",
        "huge": "a" * 20_000,
    }


@pytest.mark.parametrize("name", list(_forged()))
def test_bad_tokens_are_401_without_detail(client: TestClient, name: str) -> None:
    token = _forged()[name]
    response = client.post("/predict", headers=bearer(token), data={"designation": "Chaise"})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized"
    assert body["detail"] == GENERIC  # the same words whatever was wrong
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert TEST_SECRET not in response.text


def test_unknown_and_disabled_users_are_401(client: TestClient, settings: ServeSettings) -> None:
    ghost = create_access_token(
        "mallory", ["predict"], key=SecretStr(TEST_SECRET), expires_in=timedelta(minutes=5)
    )
    response = client.post("/predict", headers=bearer(ghost), data={"designation": "Chaise"})
    assert response.status_code == 401
    assert response.json()["detail"] == "user unknown or disabled"

    token = get_token(client, "bob")
    form = {"designation": "Chaise"}
    assert client.post("/predict", headers=bearer(token), data=form).status_code == 200
    sessions = client.app.state.serve.sessions  # type: ignore[attr-defined]
    set_disabled(sessions, "bob", disabled=True)  # after the token was issued
    refused = client.post("/predict", headers=bearer(token), data=form)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "user unknown or disabled"


def test_predict_token_on_admin_route_is_403(client: TestClient) -> None:
    token = get_token(client, "alice")
    response = client.post("/admin/reload", headers=bearer(token), json={})
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    # an admin user asking only for the predict scope gets a token that cannot reload either
    narrow = get_token(client, "root", scope="predict")
    assert client.post("/admin/reload", headers=bearer(narrow), json={}).status_code == 403


@pytest.mark.parametrize("param", ["access_token", "token", "jwt", "authorization"])
def test_token_in_the_query_string_is_refused(client: TestClient, param: str) -> None:
    token = get_token(client, "alice")
    response = client.post(f"/predict?{param}={token}", data={"designation": "Chaise"})
    assert response.status_code == 401
    assert token not in response.text


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic YWxpY2U6cGFzc3dvcmQ=", "bearer\tx", "Token abc"],
)
def test_malformed_authorization_headers_are_401(client: TestClient, header: str) -> None:
    response = client.post(
        "/predict", headers={"Authorization": header}, data={"designation": "Chaise"}
    )
    assert response.status_code == 401, response.text
