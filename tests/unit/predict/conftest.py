"""Fixtures of the batch-prediction tests: a real tiny bundle and real challenge rows/images."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tests.utils.paths import shared_data
from tests.utils.predict_bundle import make_predict_bundle


@pytest.fixture(scope="session")
def predict_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Keras bundle satisfying the input contract (tiny, untrained, deterministic)."""
    return make_predict_bundle(tmp_path_factory.mktemp("predict-bundle") / "bundle")


@pytest.fixture(scope="session")
def predict_bundle(predict_bundle_dir: Path):  # type: ignore[no-untyped-def]
    from rakuten_core.bundle import load_bundle

    return load_bundle(predict_bundle_dir)


@pytest.fixture
def labelled_products(tmp_path: Path) -> Path:
    """A challenge-format folder built from the first real training rows and their images.

    ``x.csv`` (real rows, multi-line HTML descriptions included), ``y.csv`` (their real labels)
    and ``images/`` with the real JPEGs available for them; on top of the real gaps (rows whose
    image is not in the shared copy) one image is replaced by garbage bytes and one row gets an
    empty designation and description, so every degraded case is present.
    """
    sample = shared_data("raw_sample")
    images = shared_data("images", "train")
    with (sample / "X_train.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:61]
    body[5][1] = ""  # empty designation
    body[5][2] = ""  # and no description
    out_images = tmp_path / "images"
    out_images.mkdir()
    with_image = []
    for row in body:
        name = f"image_{row[4]}_product_{row[3]}.jpg"
        if (images / name).is_file():
            shutil.copy(images / name, out_images / name)
            with_image.append(name)
    (out_images / with_image[1]).write_bytes(b"this is not a jpeg")
    with (tmp_path / "x.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    with (sample / "Y_train.csv").open(encoding="utf-8", newline="") as fh:
        labels = list(csv.reader(fh))[: len(body) + 1]
    with (tmp_path / "y.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(labels)
    return tmp_path
