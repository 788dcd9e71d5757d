"""The tf.data input pipeline: parity with serving-style inputs, missing images, class weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")

from rakuten_core.categories import CATEGORIES  # noqa: E402
from rakuten_core.errors import DataValidationError  # noqa: E402
from rakuten_core.image import decode_image  # noqa: E402
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT, model_inputs  # noqa: E402
from rakuten_core.text import product_text  # noqa: E402
from rakuten_train.pipeline import class_weights, make_dataset  # noqa: E402
from rakuten_train.splits import load_split  # noqa: E402
from tests.utils.bundles import SmallData, make_small_data  # noqa: E402

SIZE = 48


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> SmallData:
    return make_small_data(tmp_path_factory.mktemp("pipeline"), train_rows=200, seed=11)


def _serving_inputs(frame: pd.DataFrame, raw: Path) -> dict[str, np.ndarray]:
    """What the API/batch code builds: product_text + decode_image(bytes) + model_inputs."""
    texts = [product_text(d, s) for d, s in zip(frame.designation, frame.description, strict=True)]
    images = [
        decode_image((raw / p).read_bytes(), size=SIZE) if p else None for p in frame.image_path
    ]
    return model_inputs(texts, images, image_size=SIZE)


def _first_batch(ds: object) -> dict[str, np.ndarray]:
    features = next(iter(ds))  # type: ignore[call-overload]
    return {k: np.asarray(v) for k, v in features.items()}


def test_training_pipeline_and_serving_code_give_identical_tensors(small_data: SmallData) -> None:
    frame = pd.read_parquet(small_data.processed / "test.parquet")
    split = load_split(small_data.processed, "test", small_data.raw)
    got = _first_batch(
        make_dataset(split, image_size=SIZE, batch_size=len(split), with_labels=False)
    )
    want = _serving_inputs(frame, small_data.raw)
    assert got[IMAGE_INPUT].dtype == np.uint8
    assert got[IMAGE_INPUT].shape == (len(frame), SIZE, SIZE, 3)
    np.testing.assert_array_equal(got[IMAGE_INPUT], want[IMAGE_INPUT])
    np.testing.assert_array_equal(got[HAS_IMAGE_INPUT], want[HAS_IMAGE_INPUT])
    assert got[HAS_IMAGE_INPUT].min() == 1.0  # the sample has every image
    assert [t.decode() for t in got[TEXT_INPUT].ravel()] == list(want[TEXT_INPUT].ravel())
    assert got[IMAGE_INPUT].std() > 0  # real pictures, not blanks


def test_missing_and_unreadable_images_become_blank_with_flag_zero(
    small_data: SmallData, tmp_path: Path
) -> None:
    frame = pd.read_parquet(small_data.processed / "test.parquet").head(3).copy()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    frame.loc[frame.index[0], "image_path"] = ""
    frame.loc[frame.index[1], "image_path"] = str(broken)  # absolute path wins over raw dir
    frame.to_parquet(tmp_path / "test.parquet")
    split = load_split(tmp_path, "test", small_data.raw)
    got = _first_batch(make_dataset(split, image_size=SIZE, batch_size=3, with_labels=False))
    assert got[HAS_IMAGE_INPUT].ravel().tolist() == [0.0, 0.0, 1.0]
    assert not got[IMAGE_INPUT][:2].any()
    serving = model_inputs(
        ["", "", ""],
        [
            None,
            None,
            decode_image((small_data.raw / frame.image_path.iloc[2]).read_bytes(), size=SIZE),
        ],
        image_size=SIZE,
    )
    np.testing.assert_array_equal(got[IMAGE_INPUT], serving[IMAGE_INPUT])


def test_ablation_modalities_blank_one_input(small_data: SmallData) -> None:
    split = load_split(small_data.processed, "val", small_data.raw)
    text_only = _first_batch(
        make_dataset(split, image_size=SIZE, batch_size=8, modality="text_only", with_labels=False)
    )
    image_only = _first_batch(
        make_dataset(split, image_size=SIZE, batch_size=8, modality="image_only", with_labels=False)
    )
    assert not text_only[IMAGE_INPUT].any() and not text_only[HAS_IMAGE_INPUT].any()
    assert all(t == b"" for t in image_only[TEXT_INPUT].ravel())
    assert image_only[HAS_IMAGE_INPUT].min() == 1.0


def test_shuffled_training_batches_carry_labels_and_weights(small_data: SmallData) -> None:
    split = load_split(small_data.processed, "train", small_data.raw)
    weights = class_weights(split.labels, len(CATEGORIES), "balanced")[split.labels]
    ds = make_dataset(
        split, image_size=SIZE, batch_size=len(split), shuffle=True, seed=1, cache=True,
        sample_weights=weights,
    )  # fmt: skip
    features, labels, batch_weights = next(iter(ds))
    labels, batch_weights = np.asarray(labels), np.asarray(batch_weights)
    assert sorted(labels.tolist()) == sorted(split.labels.tolist())
    assert labels.tolist() != split.labels.tolist()  # shuffled
    expected = class_weights(split.labels, len(CATEGORIES), "balanced")[labels]
    np.testing.assert_allclose(batch_weights, expected)


def test_load_split_refuses_missing_files_and_unknown_codes(
    small_data: SmallData, tmp_path: Path
) -> None:
    with pytest.raises(DataValidationError, match="rakuten-data prepare"):
        load_split(tmp_path, "train", small_data.raw)
    frame = pd.read_parquet(small_data.processed / "val.parquet")
    frame.loc[frame.index[0], "prdtypecode"] = 999
    frame.to_parquet(tmp_path / "val.parquet")
    with pytest.raises(DataValidationError, match="999"):
        load_split(tmp_path, "val", small_data.raw)


def test_class_weights_balance_rare_classes_and_keep_mean_one() -> None:
    labels = np.asarray([0] * 90 + [1] * 10, dtype=np.int64)
    for mode, ratio in (("balanced", 9.0), ("sqrt_balanced", 3.0), ("none", 1.0)):
        w = class_weights(labels, 4, mode)
        assert w[1] / w[0] == pytest.approx(ratio, rel=1e-5)
        assert float(w[labels].mean()) == pytest.approx(1.0, rel=1e-5)
        assert w[2] == 0.0 and w[3] == 0.0  # absent classes
