"""Feedback becomes training data, through the real serve app and the real export command.

A user predicts with an image, then gives the true code; serve records the prediction and keeps
the image in its store; ``rakuten-data export-feedback`` (the CLI, in this process) reads the
same database and store and writes a slice that holds that image and that code. Run on SQLite
and on a real PostgreSQL server. A store that cannot be written never fails a prediction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_core.stored_images import stored_image_path
from rakuten_data.cli import app as data_cli
from rakuten_data.feedback_slice import MANIFEST_FILE, PROVENANCE_FILE, TRAIN_DIR, SliceManifest
from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.postgres import PostgresServer
from tests.utils.prom_text import sample_value
from tests.utils.serve_app import (
    DEFAULT_USERS,
    bearer,
    get_token,
    jpeg_bytes,
    migrate_and_add_users,
    png_bytes,
    serve_settings,
)
from tests.utils.serve_fixtures import serve_bundle_dir, shared_predictor

__all__ = ["serve_bundle_dir", "shared_predictor"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'serve.db'}"
        return
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def _metric(client: TestClient, outcome: str) -> float | None:
    text = client.get("/metrics").text
    return sample_value(text, "rakuten_image_store_writes_total", outcome=outcome)


def test_a_prediction_with_feedback_becomes_a_labelled_example_in_the_slice(
    database_url: str,
    tmp_path: Path,
    serve_bundle_dir: Path,
    shared_predictor: Predictor,
) -> None:
    store = tmp_path / "images"
    settings = serve_settings(
        tmp_path,
        model_path=str(serve_bundle_dir),
        database_url=database_url,
        image_store_dir=store,
    )
    migrate_and_add_users(settings, DEFAULT_USERS)
    image = jpeg_bytes(size=(150, 110), color=(200, 60, 20))
    with TestClient(create_app(settings, shared_predictor)) as client:
        state = client.app.state.serve  # type: ignore[attr-defined]
        headers = bearer(get_token(client))
        with_image = client.post(
            "/predict",
            headers=headers,
            data={
                "designation": "Piscine tubulaire ronde",
                "description": "Avec pompe",
                "productid": "3804725264",
                "imageid": "1263597046",
            },
            files={"image": ("p.jpg", image, "image/jpeg")},
        )
        assert with_image.status_code == 200, with_image.text
        text_only = client.post("/predict", headers=headers, data={"designation": "Roman policier"})
        assert text_only.status_code == 200, text_only.text
        twice = client.post(  # the same picture again: one file
            "/predict",
            headers=headers,
            data={"designation": "Piscine"},
            files={"image": ("again.jpg", image, "image/jpeg")},
        )
        assert twice.status_code == 200
        for response, code in ((with_image, 2583), (text_only, 2705)):
            feedback = client.post(
                "/feedback",
                headers=headers,
                json={"request_id": response.json()["request_id"], "prdtypecode": code},
            )
            assert feedback.status_code == 200, feedback.text
        assert state.recorder.wait_idle(20) and state.image_store.wait_idle(20)
        assert _metric(client, "stored") == 1.0 and _metric(client, "duplicate") == 1.0
    digest = hashlib.sha256(image).hexdigest()
    assert stored_image_path(store, digest, "JPEG").read_bytes() == image

    out = tmp_path / "feedback"
    result = CliRunner().invoke(
        data_cli,
        [
            "export-feedback",
            "--database-url",
            database_url,
            "--images-dir",
            str(store),
            "--out",
            str(out),
            "--holdout-share",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    part = out / TRAIN_DIR
    read = {"index_col": 0, "dtype": str, "keep_default_na": False}
    x = pd.read_csv(part / dataset.X_TRAIN_FILE, **read)  # type: ignore[arg-type]
    y = pd.read_csv(part / dataset.Y_TRAIN_FILE, **read)  # type: ignore[arg-type]
    provenance = pd.read_csv(part / PROVENANCE_FILE, **read)  # type: ignore[arg-type]
    assert list(provenance["request_id"]) == [
        with_image.json()["request_id"],
        text_only.json()["request_id"],
    ]
    assert list(y[dataset.LABEL_COLUMN]) == ["2583", "2705"]
    assert x.at[0, "designation"] == "Piscine tubulaire ronde"
    assert (x.at[0, "productid"], x.at[0, "imageid"]) == ("3804725264", "1263597046")
    picture = part / "images" / "image_train" / "image_1263597046_product_3804725264.jpg"
    assert picture.read_bytes() == image
    assert provenance.at[0, "model_version"] == with_image.json()["model_version"]
    assert provenance.at[0, "image_sha256"] == digest
    manifest = SliceManifest.model_validate_json((out / MANIFEST_FILE).read_text())
    assert manifest.counts["without_image"] == 1 and manifest.train.with_image == 1


def test_an_unwritable_store_never_fails_a_prediction(
    tmp_path: Path, serve_bundle_dir: Path, shared_predictor: Predictor
) -> None:
    blocker = tmp_path / "store-is-a-file"
    blocker.write_text("not a folder")
    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir), image_store_dir=blocker)
    migrate_and_add_users(settings, DEFAULT_USERS)
    with TestClient(create_app(settings, shared_predictor)) as client:
        headers = bearer(get_token(client))
        response = client.post(
            "/predict",
            headers=headers,
            data={"designation": "Lampe"},
            files={"image": ("p.png", png_bytes(), "image/png")},
        )
        assert response.status_code == 200, response.text
        assert client.app.state.serve.image_store.wait_idle(20)  # type: ignore[attr-defined]
        assert _metric(client, "failed") == 1.0 and _metric(client, "stored") == 0.0
