"""``POST /feedback`` as trusted data: the ``label`` scope, a final first answer, a rate limit,
and granting or revoking a scope from the CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rakuten_core.records import Feedback
from rakuten_serve.app import create_app
from rakuten_serve.cli import app as cli_app
from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.predictor import Predictor
from rakuten_serve.settings import ServeSettings, get_settings
from rakuten_serve.users import change_scopes, create_user, get_user
from tests.utils.prom_text import sample_value
from tests.utils.serve_app import (
    DEFAULT_USERS,
    PASSWORD,
    bearer,
    get_token,
    migrate_and_add_users,
    serve_settings,
    settings_env,
)

pytestmark = pytest.mark.slow


def _stored(settings: ServeSettings) -> list[Feedback]:
    engine = build_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Feedback).order_by(Feedback.id)))
    finally:
        engine.dispose()


def _sessions_do(settings: ServeSettings, action: Any, *args: Any, **kwargs: Any) -> Any:
    engine = build_engine(settings.database_url)
    try:
        return action(session_factory(engine), *args, **kwargs)
    finally:
        engine.dispose()


def _predict(client: TestClient, headers: dict[str, str], designation: str) -> dict[str, Any]:
    response = client.post("/predict", headers=headers, data={"designation": designation})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _feedback(client: TestClient, headers: dict[str, str], rid: str, code: int) -> Any:
    return client.post("/feedback", headers=headers, json={"request_id": rid, "prdtypecode": code})


def test_a_predict_only_user_is_refused_until_granted_label(
    client: TestClient, settings: ServeSettings
) -> None:
    _sessions_do(settings, create_user, "pat", PASSWORD, ["predict"])
    pat = bearer(get_token(client, "pat"))
    rid = _predict(client, pat, "Piscine tubulaire")["request_id"]  # predict still works
    refused = _feedback(client, pat, rid, 2583)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert refused.json()["detail"] == "this operation needs the scope(s): label"
    assert refused.headers["www-authenticate"] == 'Bearer scope="label"'
    # admin does not imply label; a labeller's token asked for `predict` only lacks it too
    root = bearer(get_token(client, "root"))
    assert _feedback(client, root, rid, 2583).status_code == 403
    alice_predict_only = bearer(get_token(client, "alice", scope="predict"))
    alice_rid = _predict(client, alice_predict_only, "Coussin")["request_id"]
    assert _feedback(client, alice_predict_only, alice_rid, 1920).status_code == 403
    assert client.app.state.serve.recorder.wait_idle(10)  # type: ignore[attr-defined]
    assert _stored(settings) == []
    metrics = client.get("/metrics").text
    assert sample_value(metrics, "rakuten_auth_failures_total", reason="insufficient_scope") == 3

    granted = _sessions_do(settings, change_scopes, "pat", grant=["label"])
    assert granted.scopes == ("label", "predict")
    assert _feedback(client, pat, rid, 2583).status_code == 403  # the old token lacks it
    new_token = bearer(get_token(client, "pat"))
    accepted = _feedback(client, new_token, rid, 2583)
    assert accepted.status_code == 200, accepted.text
    assert [(f.request_id, f.username, f.true_prdtypecode) for f in _stored(settings)] == [
        (rid, "pat", 2583)
    ]


def test_a_label_user_gets_a_label_token_and_the_first_answer_is_final(
    client: TestClient, settings: ServeSettings
) -> None:
    login = client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert login.json()["scopes"] == ["label", "predict"]
    alice = bearer(login.json()["access_token"])
    answer = _predict(client, alice, "Piscine gonflable")
    rid, predicted = answer["request_id"], answer["prdtypecode"]
    wrong = 10 if predicted != 10 else 40
    first = _feedback(client, alice, rid, predicted)
    assert first.status_code == 200, first.text
    assert first.json()["correct"] is True
    [stored] = _stored(settings)
    before = (stored.id, stored.username, stored.true_prdtypecode, stored.correct)
    before_at = stored.created_at

    again = _feedback(client, alice, rid, wrong)
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert "first answer is final" in again.json()["detail"]
    assert _feedback(client, alice, rid, predicted).status_code == 409  # the same code too
    # an admin who labels may answer anyone's prediction, but not after its owner
    _sessions_do(settings, change_scopes, "root", grant=["label"])
    root = bearer(get_token(client, "root"))
    assert _feedback(client, root, rid, wrong).status_code == 409
    # another labeller learns nothing: someone else's prediction is not found, answered or not
    bob = bearer(get_token(client, "bob"))
    assert _feedback(client, bob, rid, wrong).status_code == 404

    [after] = _stored(settings)
    assert (after.id, after.username, after.true_prdtypecode, after.correct) == before
    assert after.created_at == before_at
    metrics = client.get("/metrics").text
    total = sum(
        sample_value(metrics, "rakuten_feedback_total", correct=c, prdtypecode=str(code)) or 0
        for c in ("true", "false")
        for code in {predicted, wrong}
    )
    assert total == 1  # refused answers are not counted either


def test_a_second_answer_to_a_prediction_still_queued_is_refused(
    client: TestClient, settings: ServeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback may come before the prediction row is written; the first answer is final then."""
    state = client.app.state.serve  # type: ignore[attr-defined]
    queued = {"username": "alice", "prdtypecode": 2705}
    monkeypatch.setattr(state.recorder, "pending", lambda rid: queued if rid == "q1" else None)
    alice = bearer(get_token(client, "alice"))
    assert _feedback(client, alice, "q1", 2705).status_code == 200
    assert _feedback(client, alice, "q1", 10).status_code == 409
    assert [(f.request_id, f.true_prdtypecode) for f in _stored(settings)] == [("q1", 2705)]


def test_feedback_is_rate_limited_per_user(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(
        tmp_path, model_path=str(serve_bundle_dir), feedback_rate_limit="3/minute"
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        alice, bob = bearer(get_token(client, "alice")), bearer(get_token(client, "bob"))
        rids = [_predict(client, alice, f"Livre {i}")["request_id"] for i in range(4)]
        codes = [_feedback(client, alice, rid, 2705).status_code for rid in rids[:3]]
        assert codes == [200, 200, 200]
        refused = _feedback(client, alice, rids[3], 2705)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"] == "rate_limited"
        assert "3 per 1 minute" in refused.json()["detail"]
        # another user has their own budget, and /predict is not charged by feedback
        bob_rid = _predict(client, bob, "Livre")["request_id"]
        assert _feedback(client, bob, bob_rid, 2705).status_code == 200
        assert _predict(client, alice, "Livre encore")["prdtypecode"]
        metrics = client.get("/metrics").text
        assert sample_value(metrics, "rakuten_rate_limited_requests_total", route="/feedback") == 1
    stored = {f.request_id for f in _stored(settings)}
    assert stored == {*rids[:3], bob_rid}  # the refused answer was not written


def test_feedback_route_documents_its_scope_and_refusals(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/feedback"]["post"]
    assert {"403", "404", "409", "422", "429"} <= set(operation["responses"])
    assert "`label` scope" in operation["description"]
    assert "1000/minute" in operation["description"]  # the configured limit


def test_users_grant_and_revoke_change_scopes_from_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = serve_settings(tmp_path)
    migrate_and_add_users(settings, {"pat": ["predict"]})
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        granted = runner.invoke(cli_app, ["users", "grant", "pat", "-s", "label"])
        assert granted.exit_code == 0, granted.output
        assert "pat: scopes label predict" in granted.output
        assert _sessions_do(settings, get_user, "pat").scopes == ("label", "predict")
        revoked = runner.invoke(cli_app, ["users", "revoke", "pat", "-s", "predict"])
        assert revoked.exit_code == 0, revoked.output
        assert _sessions_do(settings, get_user, "pat").scopes == ("label",)
        unknown = runner.invoke(cli_app, ["users", "grant", "pat", "-s", "root"])
        assert unknown.exit_code == 2 and "unknown scope" in unknown.output
        nobody = runner.invoke(cli_app, ["users", "grant", "nobody", "-s", "label"])
        assert nobody.exit_code == 2 and "no user 'nobody'" in nobody.output
        assert runner.invoke(cli_app, ["users", "grant", "pat"]).exit_code == 2  # no -s
        assert _sessions_do(settings, get_user, "pat").scopes == ("label",)
    finally:
        get_settings.cache_clear()
        logging.getLogger().handlers.clear()
