"""The challenger in shadow: the champion answers, the challenger's answer is recorded beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction, ShadowPrediction
from rakuten_core.schema import Product
from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor, load_model, prepare_input
from rakuten_serve.schemas import PredictionResponse
from rakuten_serve.settings import ServeSettings
from rakuten_serve.shadow import ShadowScorer
from rakuten_serve.telemetry import PrometheusTelemetry
from tests.utils.prom_text import sample_value
from tests.utils.serve_app import bearer, get_token, jpeg_bytes
from tests.utils.serve_fixtures import copy_bundle_as

pytestmark = pytest.mark.slow
REQUESTS = 6


def _shadow_rows(settings: ServeSettings) -> list[ShadowPrediction]:
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(ShadowPrediction)))
    finally:
        engine.dispose()


@pytest.fixture
def challenger_dir(serve_bundle_dir: Path, tmp_path: Path) -> Path:
    return copy_bundle_as(serve_bundle_dir, tmp_path / "challenger", "challenger-9")


@pytest.fixture
def shadow_client(
    settings: ServeSettings, shared_predictor: Predictor, challenger_dir: Path
) -> Iterator[TestClient]:
    shadow_settings = settings.model_copy(
        update={"challenger_model_path": str(challenger_dir), "shadow_share": 1.0}
    )
    with TestClient(create_app(shadow_settings, shared_predictor)) as client:
        assert client.app.state.serve.replica.challenger.ready  # type: ignore[attr-defined]
        yield client


def test_the_champion_answers_and_the_challenger_is_recorded_beside_it(
    shadow_client: TestClient, settings: ServeSettings, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    client = shadow_client
    state = client.app.state.serve  # type: ignore[attr-defined]
    champion = client.get("/model").json()["model_version"]
    token = bearer(get_token(client, "alice"))
    answers = []
    for i in range(REQUESTS):
        image = {"image": ("p.jpg", jpeg_bytes(), "image/jpeg")} if i % 2 else None
        response = client.post(
            "/predict", headers=token, data={"designation": f"Piscine {i}"}, files=image
        )
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == champion  # never the challenger's
        answers.append(response.json())
    state.shadow.stop()  # scores what is queued, then stops
    state.recorder.wait_idle(30)
    rows = {row.request_id: row for row in _shadow_rows(settings)}
    assert set(rows) == {a["request_id"] for a in answers}
    for answer in answers:
        row = rows[answer["request_id"]]
        assert row.champion_model_version == champion
        assert row.champion_prdtypecode == answer["prdtypecode"]
        assert row.challenger_model_version == "challenger-9"
        assert row.challenger_latency_ms > 0
        # the same weights under another version: the same answer
        assert row.challenger_prdtypecode == answer["prdtypecode"]
    engine = create_engine(settings.database_url)
    with Session(engine) as session:
        stored = {p.request_id for p in session.scalars(select(Prediction))}
    engine.dispose()
    assert stored >= set(rows)  # the champion's own records are written as before
    metrics = client.get("/metrics").text
    assert sample_value(metrics, "rakuten_shadow_predictions_total", agreement="true") == REQUESTS
    assert sample_value(metrics, "rakuten_shadow_predictions_total", agreement="false") == 0
    assert sample_value(metrics, "rakuten_challenger_info", version="challenger-9") == 1
    calls = sample_value(metrics, "rakuten_shadow_inference_duration_seconds_count")
    assert calls is not None and calls >= 1

    # a reload can target the challenger, and leaves the champion alone
    v10 = copy_bundle_as(serve_bundle_dir, tmp_path / "challenger-10", "challenger-10")
    root = bearer(get_token(client, "root"))
    reloaded = client.post(
        "/admin/reload", headers=root, json={"model": str(v10), "role": "challenger"}
    )
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["role"] == "challenger"
    assert reloaded.json()["previous_version"] == "challenger-9"
    assert [w["model_version"] for w in reloaded.json()["workers"]] == ["challenger-10"]
    assert client.get("/model").json()["model_version"] == champion
    metrics = client.get("/metrics").text
    assert sample_value(metrics, "rakuten_challenger_info", version="challenger-10") == 1
    assert sample_value(metrics, "rakuten_challenger_info", version="challenger-9") == 0


def test_without_a_challenger_nothing_is_shadowed_and_a_challenger_reload_needs_a_model(
    client: TestClient, settings: ServeSettings
) -> None:
    token = bearer(get_token(client, "root"))
    assert client.post("/predict", headers=token, data={"designation": "Livre"}).status_code == 200
    refused = client.post("/admin/reload", headers=token, json={"role": "challenger"})
    assert refused.status_code == 422
    assert "no challenger is configured" in refused.json()["detail"]
    bad_role = client.post("/admin/reload", headers=token, json={"role": "referee"})
    assert bad_role.status_code == 422
    client.app.state.serve.recorder.wait_idle(30)  # type: ignore[attr-defined]
    assert _shadow_rows(settings) == []


def test_a_full_queue_drops_requests_with_a_metric_instead_of_waiting(
    settings: ServeSettings, challenger_dir: Path
) -> None:
    challenger = Predictor(load_model(str(challenger_dir), cache_dir=Path("unused")), top_k=1)
    telemetry = PrometheusTelemetry()
    engine = create_engine(settings.database_url)
    scorer = ShadowScorer(
        challenger,
        engine=engine,
        telemetry=telemetry,
        share=1.0,
        queue_size=1,
        batch_size=8,
        image_limits=settings.image_limits,
    )
    product = Product(designation="Piscine tubulaire")
    prepared = prepare_input(
        product.designation,
        None,
        None,
        image_size=challenger.model.image_size,
        limits=settings.image_limits,
    )
    answer = PredictionResponse(
        request_id="r",
        prdtypecode=2583,
        name_fr="x",
        name_en="x",
        probability=0.5,
        top_k=[],
        model_name="m",
        model_version="1",
        used_image=False,
        latency_ms=1.0,
    )
    scorer.start()
    offered = 50  # one model call takes milliseconds, 50 queue puts microseconds
    for i in range(offered):
        scorer.offer(answer.model_copy(update={"request_id": f"r{i}"}), prepared, product, None)
    scorer.stop()
    engine.dispose()
    dropped = sample_value(
        telemetry.exposition().decode(), "rakuten_shadow_dropped_total", reason="queue_full"
    )
    assert dropped is not None and dropped >= 1
    assert scorer.scored + dropped == offered
    assert len(_shadow_rows(settings)) == scorer.scored
