"""Fixtures for the data service: generated samples and the real 201-row raw sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from rakuten_core import dataset
from rakuten_data.sample import SampleSpec, write_sample
from tests.utils.paths import shared_data

SMALL_SPEC = SampleSpec(train_rows=300, test_rows=30, seed=7, image_size=32)


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated raw directory, shared read-only by the tests of a session."""
    out = tmp_path_factory.mktemp("sample") / "raw"
    write_sample(out, SMALL_SPEC, label_table=None)
    return out


def copy_real_sample(target: Path) -> Path:
    """The real 201-row sample under the Hub file names, with the real images that match.

    The shared folder names the files ``X_train.csv``/``Y_train.csv``; the Hub (and ``prepare``)
    use ``X_train_update.csv``/``Y_train_CVw08PX.csv``. Only the images of listed products are
    copied; the others are missing, as they are for any partial download.
    """
    raw_sample = shared_data("raw_sample")
    images = shared_data("images", "train")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(raw_sample / "X_train.csv", target / dataset.X_TRAIN_FILE)
    shutil.copyfile(raw_sample / "Y_train.csv", target / dataset.Y_TRAIN_FILE)
    shutil.copyfile(raw_sample / "X_test_update.csv", target / dataset.X_TEST_FILE)
    image_dir = target / dataset.IMAGES_DIR / dataset.TRAIN_IMAGES_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    products = pd.read_csv(raw_sample / "X_train.csv", index_col=0)
    for imageid, productid in zip(products["imageid"], products["productid"], strict=True):
        name = dataset.image_filename(imageid, productid)
        if (images / name).is_file():
            shutil.copyfile(images / name, image_dir / name)
    return target


@pytest.fixture
def real_raw(tmp_path: Path) -> Path:
    return copy_real_sample(tmp_path / "raw")


@pytest.fixture
def sample_copy(small_sample: Path, tmp_path: Path) -> Path:
    """A private copy of the small sample that a test may damage."""
    return Path(shutil.copytree(small_sample, tmp_path / "raw"))
