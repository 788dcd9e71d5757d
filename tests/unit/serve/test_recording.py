"""Prediction records, feedback and live accuracy, spool recovery, access logs."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rakuten_core.drift import InputFeatures, product_features, with_answer
from rakuten_core.logs import configure_logging
from rakuten_core.records import Feedback, Prediction
from rakuten_serve.app import create_app
from rakuten_serve.db.engine import build_engine
from rakuten_serve.middleware import new_request_id
from rakuten_serve.predictor import Predictor, prepare_input
from rakuten_serve.settings import ServeSettings
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


def _rows(settings: ServeSettings) -> list[Prediction]:
    engine = build_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Prediction).order_by(Prediction.created_at)))
    finally:
        engine.dispose()


def test_every_field_of_a_prediction_is_recorded(
    client: TestClient, settings: ServeSettings
) -> None:
    image = jpeg_bytes()
    response = client.post(
        "/predict",
        headers=bearer(get_token(client)),
        data={
            "designation": "Piscine <b>ronde</b>",
            "description": "Avec pompe",
            "productid": "3804725264",
            "imageid": "1263597046",
        },
        files={"image": ("p.jpg", image, "image/jpeg")},
    )
    assert response.status_code == 200
    out = response.json()
    assert client.app.state.serve.recorder.wait_idle(10)  # type: ignore[attr-defined]
    [row] = _rows(settings)
    assert row.request_id == out["request_id"] == response.headers["x-request-id"]
    assert row.username == "alice"
    assert (
        row.model_version == out["model_version"] == "serve-test-1"
        or row.model_version == out["model_version"]
    )
    assert row.designation == "Piscine <b>ronde</b>"  # as sent; cleaning is the model's input
    assert row.description == "Avec pompe"
    assert (row.productid, row.imageid) == (3804725264, 1263597046)
    assert row.image_sha256 == hashlib.sha256(image).hexdigest()
    assert row.image_bytes == len(image)
    assert row.prdtypecode == out["prdtypecode"]
    assert row.probability == pytest.approx(out["probability"])
    assert [c["prdtypecode"] for c in row.top_k] == [c["prdtypecode"] for c in out["top_k"]]
    assert len(row.top_k) == 5
    assert 0 < row.latency_ms < 10_000
    assert abs((datetime.now(UTC) - row.created_at.replace(tzinfo=UTC)).total_seconds()) < 60
    # drift features, computed by rakuten_core.drift as for the reference (what the monitor reads)
    assert row.text_length == len("Piscine ronde Avec pompe")  # the cleaned model text
    assert (row.has_description, row.has_image) == (True, True)
    assert row.image_brightness == pytest.approx((30 + 120 + 200) / 3, abs=3)  # a flat JPEG


def test_feedback_is_counted_by_correctness_and_true_code_and_is_owned(
    client: TestClient, settings: ServeSettings
) -> None:
    alice, bob = bearer(get_token(client, "alice")), bearer(get_token(client, "bob"))
    first = client.post("/predict", headers=alice, data={"designation": "Piscine gonflable"}).json()
    second = client.post("/predict", headers=alice, data={"designation": "Coussin velours"}).json()
    ok = client.post(
        "/feedback",
        headers=alice,
        json={"request_id": first["request_id"], "prdtypecode": first["prdtypecode"]},
    )
    assert ok.status_code == 200
    assert ok.json()["correct"] is True
    wrong_code = 10 if second["prdtypecode"] != 10 else 40
    wrong = client.post(
        "/feedback",
        headers=alice,
        json={"request_id": second["request_id"], "prdtypecode": wrong_code},
    )
    assert wrong.json() == {
        "request_id": second["request_id"],
        "predicted_prdtypecode": second["prdtypecode"],
        "true_prdtypecode": wrong_code,
        "correct": False,
    }
    metrics = client.get("/metrics").text
    assert "rakuten_live_accuracy" not in metrics  # the monitor service owns live quality
    right_code = str(first["prdtypecode"])
    feedback = "rakuten_feedback_total"
    assert sample_value(metrics, feedback, correct="true", prdtypecode=right_code) == 1
    assert sample_value(metrics, feedback, correct="false", prdtypecode=str(wrong_code)) == 1
    # every (correct, class) series of the served model exists from the start, at 0 if unused
    series = sample_labels(metrics, feedback)
    assert len(series) == 2 * 27
    assert sum(sample_value(metrics, feedback, **labels) or 0 for labels in series) == 2
    # someone else's prediction, an unknown id, an unknown code
    assert (
        client.post(
            "/feedback", headers=bob, json={"request_id": first["request_id"], "prdtypecode": 10}
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/feedback", headers=alice, json={"request_id": "nope", "prdtypecode": 10}
        ).status_code
        == 404
    )
    unknown = client.post(
        "/feedback", headers=alice, json={"request_id": first["request_id"], "prdtypecode": 12345}
    )
    assert unknown.status_code == 422
    assert client.app.state.serve.recorder.wait_idle(10)  # type: ignore[attr-defined]
    engine = build_engine(settings.database_url)
    with Session(engine) as session:
        stored = {f.request_id: f.correct for f in session.scalars(select(Feedback))}
    engine.dispose()
    assert stored == {first["request_id"]: True, second["request_id"]: False}


def test_spool_left_by_a_dead_process_is_replayed_once(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    migrate_and_add_users(settings, DEFAULT_USERS)
    spool = settings.record_spool_dir
    spool.mkdir(parents=True)
    record = {
        "request_id": "crashed-0001",
        "username": "alice",
        "created_at": datetime.now(UTC).isoformat(),
        "model_name": "m",
        "model_version": "1",
        "designation": "Livre",
        "description": None,
        "productid": None,
        "imageid": None,
        "image_sha256": None,
        "image_bytes": None,
        "prdtypecode": 10,
        "probability": 0.9,
        "top_k": [{"prdtypecode": 10, "probability": 0.9}],
        "latency_ms": 12.5,
    }
    # A record of this version has the drift feature columns too: both kinds in one spool.
    current = record | {
        "request_id": "crashed-0002",
        "text_length": 5,
        "has_description": False,
        "has_image": False,
        "image_brightness": None,
    }
    # pid 999999999 cannot exist: the file belongs to a dead process; the line is written twice
    (spool / "predictions-999999999-deadbeef.jsonl").write_text(
        json.dumps(record) + "\n" + json.dumps(current) + "\n" + json.dumps(record) + "\n"
    )
    with TestClient(create_app(settings, shared_predictor)) as client:
        assert client.app.state.serve.recorder.wait_idle(15)  # type: ignore[attr-defined]
    rows = _rows(settings)
    assert sorted(r.request_id for r in rows) == ["crashed-0001", "crashed-0002"]
    assert {r.request_id: r.text_length for r in rows} == {"crashed-0001": None, "crashed-0002": 5}
    assert not list(spool.glob("*.jsonl"))


def test_access_log_has_requests_but_no_secrets(client: TestClient, tmp_path: Path) -> None:
    log_file = configure_logging("serve", log_dir=tmp_path / "logs", console=False)
    try:
        token = get_token(client)
        image = jpeg_bytes()
        client.post(
            "/predict",
            headers=bearer(token),
            data={"designation": "Piscine"},
            files={"image": ("p.jpg", image, "image/jpeg")},
        )
        client.post("/token", data={"username": "alice", "password": "a-wrong-password-123"})
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
    text = log_file.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    access = [line for line in lines if line["name"] == "rakuten_serve.access"]
    predict = [line for line in access if line["path"] == "/predict"]
    assert predict and predict[0]["status"] == 200 and predict[0]["user"] == "alice"
    assert predict[0]["request_id"] != "-"
    assert token not in text and token.split(".")[2] not in text
    assert PASSWORD not in text and "a-wrong-password-123" not in text
    assert image[200:240].hex() not in text and str(image[200:240]) not in text
    logging.getLogger().handlers.clear()


def test_the_input_is_prepared_with_the_records_drift_features() -> None:
    """prepare_input (a decode thread) computes them, so the event loop only adds the answer."""
    limits = ServeSettings(_env_file=None).image_limits  # type: ignore[call-arg]
    image = jpeg_bytes()
    prepared = prepare_input(
        "Piscine <b>ronde</b>", " <p> </p> ", image, image_size=32, limits=limits
    )
    assert prepared.features is not None and prepared.image is not None
    evaluated = product_features(  # what evaluation computes for the bundle's reference
        text=prepared.text, description=" <p> </p> ", image=prepared.image, prdtypecode=10,
        probability=0.5,
    )  # fmt: skip
    assert with_answer(prepared.features, prdtypecode=10, probability=0.5) == evaluated
    assert (evaluated.has_description, evaluated.has_image) == (False, True)
    text_only = prepare_input("Piscine", "Avec pompe", None, image_size=32, limits=limits)
    assert text_only.features == InputFeatures(
        text_length=len("Piscine Avec pompe"),
        has_description=True,
        has_image=False,
        image_brightness=None,
    )


def test_request_ids_are_uuid4_shaped_and_distinct() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids)
