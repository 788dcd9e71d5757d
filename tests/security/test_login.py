"""``/token``: brute force limited per client and per user, unknown users and wrong passwords
indistinguishable in the answer, bcrypt's 72-byte limit stated clearly.

The time both take is measured by ``bench/login_timing.py`` (docs/reliability.md), not asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    migrate_and_add_users,
    serve_settings,
)

pytestmark = [pytest.mark.slow]


def _app(tmp_path: Path, bundle: Path, predictor: Predictor, **overrides: str) -> TestClient:
    settings = serve_settings(tmp_path, model_path=str(bundle), **overrides)
    migrate_and_add_users(settings, DEFAULT_USERS)
    return TestClient(create_app(settings, predictor))


@pytest.fixture
def limited(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[TestClient]:
    with _app(
        tmp_path,
        serve_bundle_dir,
        shared_predictor,
        token_rate_limit="1000/minute",
        token_user_rate_limit="3/minute",
    ) as client:
        yield client


def _login(client: TestClient, user: str, password: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.post("/token", data={"username": user, "password": password})
    return response.status_code, response.json()


def test_failed_logins_are_limited_per_user(limited: TestClient) -> None:
    statuses = [_login(limited, "alice", f"wrong-{i}")[0] for i in range(3)]
    assert statuses == [401, 401, 401]
    status, body = _login(limited, "alice", PASSWORD)  # even the right password waits now
    assert status == 429
    assert body["error"] == "rate_limited"
    assert "this user" in body["detail"]
    response = limited.post("/token", data={"username": "alice", "password": PASSWORD})
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert _login(limited, "ALICE ", "wrong")[0] == 429  # same account, other spelling
    assert _login(limited, "bob", PASSWORD)[0] == 200  # other accounts are unaffected


def test_successful_logins_do_not_count(limited: TestClient) -> None:
    assert [_login(limited, "bob", PASSWORD)[0] for _ in range(5)] == [200] * 5


def test_logins_are_limited_per_client(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    with _app(tmp_path, serve_bundle_dir, shared_predictor, token_rate_limit="4/minute") as client:
        users = ["alice", "bob", "root", "nobody"]
        assert [_login(client, u, "wrong")[0] for u in users] == [401] * 4
        status, body = _login(client, "carol", "wrong")
        assert status == 429
        assert body["error"] == "rate_limited"


def test_unknown_user_and_wrong_password_answer_alike(limited: TestClient) -> None:
    unknown = limited.post("/token", data={"username": "nobody", "password": "wrong-password"})
    wrong = limited.post("/token", data={"username": "bob", "password": "wrong-password"})
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(unknown.json()) == strip(wrong.json())
    volatile = {"x-request-id", "date", "content-length"}
    assert {k: v for k, v in unknown.headers.items() if k not in volatile} == {
        k: v for k, v in wrong.headers.items() if k not in volatile
    }


@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_password_over_72_bytes_is_a_clear_422(limited: TestClient, user: str) -> None:
    status, body = _login(limited, user, "é" * 40)  # 40 characters, 80 bytes
    assert status == 422
    assert "80 bytes" in body["detail"] and "72" in body["detail"]
