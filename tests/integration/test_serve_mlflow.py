"""``/admin/reload`` to ``models:/name@alias`` through a real MLflow registry (local store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor, load_model
from tests.utils.registry import register_bundle
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    migrate_and_add_users,
    serve_settings,
)
from tests.utils.serve_fixtures import copy_bundle_as, serve_bundle_dir

__all__ = ["serve_bundle_dir"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _register(bundle: Path, tracking_uri: str, artifacts: Path, name: str, alias: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    experiment = mlflow.create_experiment("serve-reload", artifact_location=artifacts.as_uri())
    run_id, _ = register_bundle(bundle, name, alias=alias, experiment_id=experiment)
    return run_id


def test_reload_from_a_registry_alias(
    tmp_path: Path, serve_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    champion = copy_bundle_as(serve_bundle_dir, tmp_path / "champion", "registry-7")
    _register(champion, tracking, tmp_path / "artifacts", "rakuten-serve-test", "champion")

    settings = serve_settings(tmp_path, model_path="models:/rakuten-serve-test@champion")
    migrate_and_add_users(settings, DEFAULT_USERS)
    predictor = Predictor(load_model(str(serve_bundle_dir), cache_dir=tmp_path / "unused"))
    with TestClient(create_app(settings, predictor)) as client:
        root = bearer(get_token(client, "root"))
        before = client.get("/model").json()["model_version"]
        reloaded = client.post("/admin/reload", headers=root)  # default: RAKUTEN_MODEL_PATH
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["previous_version"] == before
        info = client.get("/model").json()
        assert info["model_version"] == "registry-7"
        assert info["source"] == "models:/rakuten-serve-test@champion"
        assert (
            client.post("/predict", headers=root, data={"designation": "Piscine"}).json()[
                "model_version"
            ]
            == "registry-7"
        )
        # the download landed in the configured cache, not in the working directory
        assert list(settings.model_cache_dir.rglob("bundle.json"))
        missing = client.post(
            "/admin/reload", headers=root, json={"model": "models:/rakuten-serve-test@nope"}
        )
        assert missing.status_code == 422
        assert client.get("/model").json()["model_version"] == "registry-7"
