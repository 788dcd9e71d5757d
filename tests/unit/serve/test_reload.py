"""Hot reload: a new bundle is warmed up and swapped in; a failing one leaves the old serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor, load_model
from rakuten_serve.settings import ServeSettings
from tests.utils.prom_text import sample_value
from tests.utils.serve_app import bearer, get_token
from tests.utils.serve_bundle import make_broken_bundle
from tests.utils.serve_fixtures import copy_bundle_as

pytestmark = pytest.mark.slow


@pytest.fixture
def own_client(settings: ServeSettings, serve_bundle_dir: Path) -> Iterator[TestClient]:
    predictor = Predictor(load_model(str(serve_bundle_dir), cache_dir=Path("unused")))
    with TestClient(create_app(settings, predictor)) as client:
        yield client


def test_reload_swaps_and_failures_keep_the_old_model(
    own_client: TestClient, serve_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = own_client
    root = bearer(get_token(client, "root"))
    original = client.get("/model").json()["model_version"]
    v2 = copy_bundle_as(serve_bundle_dir, tmp_path / "v2", "v2-reloaded")

    swapped = client.post("/admin/reload", headers=root, json={"model": str(v2)})
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["previous_version"] == original
    assert swapped.json()["model"]["model_version"] == "v2-reloaded"
    assert client.get("/model").json()["source"] == str(v2)
    answer = client.post("/predict", headers=root, data={"designation": "Piscine"})
    assert answer.json()["model_version"] == "v2-reloaded"

    broken = make_broken_bundle(serve_bundle_dir, tmp_path / "broken")
    for target in (str(broken), str(tmp_path / "missing"), "models:/no-such-model@champion"):
        failed = client.post("/admin/reload", headers=root, json={"model": target})
        assert failed.status_code == 422, failed.text
        assert "still serving version v2-reloaded" in failed.json()["detail"]
        assert client.get("/model").json()["model_version"] == "v2-reloaded"
        still = client.post("/predict", headers=root, data={"designation": "Piscine"})
        assert still.status_code == 200 and still.json()["model_version"] == "v2-reloaded"

    metrics = client.get("/metrics").text
    assert sample_value(metrics, "rakuten_model_reloads_total", outcome="success") == 1
    assert sample_value(metrics, "rakuten_model_reloads_total", outcome="failure") == 3
    # the identity gauge: the served model 1, the replaced one 0; still ready
    assert sample_value(metrics, "rakuten_model_info", version="v2-reloaded", source=str(v2)) == 1
    assert sample_value(metrics, "rakuten_model_info", version=original) == 0
    assert sample_value(metrics, "rakuten_model_ready") == 1


def test_reload_without_body_uses_the_configured_path(own_client: TestClient) -> None:
    root = bearer(get_token(own_client, "root"))
    response = own_client.post("/admin/reload", headers=root)
    assert response.status_code == 200
    assert response.json()["model"]["source"] == own_client.app.state.serve.settings.model_path  # type: ignore[attr-defined]


def test_app_starts_unready_without_a_model_and_an_admin_can_fix_it(
    tmp_path: Path, serve_bundle_dir: Path
) -> None:
    from tests.utils.serve_app import DEFAULT_USERS, migrate_and_add_users, serve_settings

    settings = serve_settings(tmp_path, model_path=str(tmp_path / "not-yet"))
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["model_loaded"] is False and ready.json()["database"] is True
        token = get_token(client, "root")
        predict = client.post("/predict", headers=bearer(token), data={"designation": "Livre"})
        assert predict.status_code == 503 and predict.json()["error"] == "model_unavailable"
        assert client.get("/health/live").json() == {"status": "alive"}
        fixed = client.post(
            "/admin/reload", headers=bearer(token), json={"model": str(serve_bundle_dir)}
        )
        assert fixed.status_code == 200 and fixed.json()["previous_version"] is None
        assert client.get("/health/ready").status_code == 200
