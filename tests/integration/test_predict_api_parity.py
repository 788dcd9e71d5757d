"""Batch and API give the same answer for the same product (same bundle, same preprocessing).

The batch CLI reads a challenge-format CSV and decodes image files in a thread pool, many rows
per model call; the API receives one multipart request per product (text fields + image bytes)
and goes through its micro-batcher. Both must clean text, decode images and call the model
identically, so the top-3 codes and their probabilities must match for every product the API
accepts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from rakuten_core.dataset import image_filename
from rakuten_predict.reader import ProductCsv
from tests.utils.predict_data import GARBAGE_IMAGE, make_labelled_products
from tests.utils.serve_app import bearer, get_token
from tests.utils.serve_fixtures import client, serve_bundle_dir, settings, shared_predictor

__all__ = ["client", "serve_bundle_dir", "settings", "shared_predictor"]

pytestmark = pytest.mark.slow  # a real model behind both paths


def test_batch_and_api_answer_alike(
    client: TestClient, serve_bundle_dir: Path, tmp_path: Path
) -> None:
    data = make_labelled_products(tmp_path / "products", rows=80)  # 49 images, 30 missing
    out = tmp_path / "pred.csv"
    cli = Path(sys.executable).with_name("rakuten-predict")  # the real entry point, as users run it
    result = subprocess.run(
        [
            str(cli), "predict", "--model", str(serve_bundle_dir), "--csv", str(data / "x.csv"),
            "--images", str(data / "images"), "--out", str(out), "--batch-size", "16",
            "--no-progress",
        ],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "RAKUTEN_LOG_DIR": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    batch = pd.read_csv(out, index_col=0)
    token = get_token(client)

    compared = {"with_image": 0, "text_only": 0}
    for row in ProductCsv(data / "x.csv").rows():
        if not row.designation.strip():
            continue  # the API requires a designation (422); batch predicts the row anyway
        file = data / "images" / image_filename(row.imageid, row.productid)
        has_image = file.exists() and file.read_bytes() != GARBAGE_IMAGE
        form = {"designation": row.designation, "productid": str(row.productid)}
        if row.description:
            form["description"] = row.description
        files = {"image": (file.name, file.read_bytes(), "image/jpeg")} if has_image else None
        if file.exists() and not has_image:
            continue  # the API refuses garbage bytes (415); batch predicts it text-only
        response = client.post("/predict", data=form, files=files, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["used_image"] is has_image
        api_codes = [c["prdtypecode"] for c in body["top_k"][:3]]
        api_probs = [c["probability"] for c in body["top_k"][:3]]
        got = batch.loc[row.index]
        assert [got[f"top{k}_code"] for k in (1, 2, 3)] == api_codes, row.index
        np.testing.assert_allclose(
            [got[f"top{k}_probability"] for k in (1, 2, 3)], api_probs, atol=2e-5
        )
        assert got["prdtypecode"] == body["prdtypecode"]
        compared["with_image" if has_image else "text_only"] += 1
    assert compared["with_image"] >= 40 and compared["text_only"] >= 25, compared
