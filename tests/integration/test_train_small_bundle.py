"""The ``small_bundle_dir`` fixture: a real bundle others' tests rely on, checked for content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rakuten_core.bundle import (
    METADATA_FILE,
    MODEL_FILE,
    SERVING_DIR,
    WIDE_FILE,
    OnnxRuntime,
    load_bundle,
    read_metadata,
)
from rakuten_core.categories import CATEGORIES
from rakuten_core.drift import FEATURES, require_reference
from rakuten_core.errors import BundleError
from rakuten_core.inputs import model_inputs
from rakuten_core.job_stamp import STAMP_NAME
from rakuten_train.export.bundle import load_keras_bundle
from rakuten_train.export.serving import export_serving

pytestmark = pytest.mark.slow


def test_small_bundle_is_complete_and_describes_itself(small_bundle_dir: Path) -> None:
    assert sorted(p.name for p in small_bundle_dir.iterdir()) == [
        STAMP_NAME,  # what the bundle was made from (rakuten_core.job_stamp), written last
        METADATA_FILE,
        MODEL_FILE,
        SERVING_DIR,
    ]
    assert sorted(p.name for p in (small_bundle_dir / SERVING_DIR).iterdir()) == [
        "check.json",
        "model.onnx",
        "text.json",
        "wide.npz",  # the wide part, computed sparse outside the ONNX graph
    ]
    meta = read_metadata(small_bundle_dir)
    assert [c.code for c in meta.categories] == [c.code for c in CATEGORIES]
    assert meta.image_size == 32
    assert len(meta.data_fingerprint) == 64
    assert meta.metrics.split == "test"
    assert set(meta.metrics.modalities) == {"fused", "text_only", "image_only"}
    assert 0.0 <= meta.metrics.weighted_f1 <= 1.0
    reference = require_reference(meta.reference)  # the monitor's format, versioned
    assert set(reference.features) == {f.name for f in FEATURES}
    classes = reference.features["predicted_class"]
    assert classes.labels == [str(c.code) for c in CATEGORIES]
    assert classes.total == reference.n == meta.metrics.n
    assert reference.features["text_length"].total == reference.n
    assert reference.features["no_description"].total == reference.n  # descriptions were read
    assert 0 < reference.features["image_brightness"].total <= reference.n
    assert meta.params["image_size"] == 32


def test_small_bundle_learned_something_on_held_out_rows(small_bundle_dir: Path) -> None:
    metrics = json.loads((small_bundle_dir.parent / "reports" / "metrics.json").read_text())
    # 27 classes: chance is ~0.04; a trained text branch is far above it.
    assert metrics["weighted_f1"] > 0.3
    assert metrics["text_only_weighted_f1"] > 0.3


def test_small_bundle_answers_with_a_missing_modality(small_bundle_dir: Path) -> None:
    bundle = load_bundle(small_bundle_dir)
    size = bundle.image_size
    inputs = model_inputs(
        ["Piscine gonflable ronde avec pompe", "", "Roman policier"],
        [None, np.full((size, size, 3), 120, np.uint8), None],
        image_size=size,
    )
    probs = bundle.predict_proba(inputs)
    assert probs.shape == (3, 27)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(probs).all()


def test_the_onnx_runtime_answers_as_the_keras_model_on_real_listings(
    small_bundle_dir: Path,
) -> None:
    """The production architecture (masked BiLSTM as ONNX's LSTM, word and character TF-IDF,
    CNN) through both runtimes, on real French listings with and without an image."""
    from tests.utils.serve_bundle import training_rows

    onnx = load_bundle(small_bundle_dir)
    keras = load_keras_bundle(small_bundle_dir)
    assert (onnx.runtime_name, keras.runtime_name) == ("onnx", "keras")
    texts = [t for t, _ in training_rows(600)] + ["", "x", "piscine " * 200]
    size = onnx.image_size
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if i % 3 else None
        for i in range(len(texts))
    ]
    for start in range(0, len(texts), 64):
        inputs = model_inputs(
            texts[start : start + 64], images[start : start + 64], image_size=size
        )
        np.testing.assert_allclose(
            onnx.predict_proba(inputs), keras.predict_proba(inputs), rtol=0, atol=1e-5
        )


def test_the_sparse_wide_part_answers_as_the_one_inside_the_onnx_graph(
    small_bundle_dir: Path, tmp_path: Path
) -> None:
    """Bundles exported before ``wide.npz`` keep the wide part in ``model.onnx`` and must still
    load; both forms give the same probabilities on real listings."""
    from tests.utils.serve_bundle import training_rows

    dense_dir = tmp_path / "dense"
    dense_dir.mkdir()
    for name in (METADATA_FILE, MODEL_FILE):
        shutil.copy(small_bundle_dir / name, dense_dir / name)
    size = read_metadata(small_bundle_dir).image_size
    export_serving(dense_dir / MODEL_FILE, dense_dir, size, sparse_wide=False)
    assert not (dense_dir / SERVING_DIR / WIDE_FILE).exists()
    sparse, dense = load_bundle(small_bundle_dir), load_bundle(dense_dir)
    assert isinstance(sparse.runtime, OnnxRuntime) and isinstance(dense.runtime, OnnxRuntime)
    assert {"wide_features", "tokens"} <= set(sparse.runtime.input_names)
    assert not {"word_counts", "char_counts"} & set(sparse.runtime.input_names)
    assert {"word_counts", "char_counts"} <= set(dense.runtime.input_names)
    texts = [t for t, _ in training_rows(200)] + ["", "zzzz qqqq", "piscine " * 300]
    inputs = model_inputs(texts, [None] * len(texts), image_size=size)
    sparse_probs, dense_probs = sparse.predict_proba(inputs), dense.predict_proba(inputs)
    np.testing.assert_allclose(sparse_probs, dense_probs, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(sparse_probs.argmax(axis=1), dense_probs.argmax(axis=1))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.unlink(), "No such file"),
        (lambda f: f.write_bytes(b"not an archive"), "could not be read"),
        (lambda f: f.write_bytes(f.read_bytes()[:4096]), "could not be read"),  # cut short
        (lambda f: np.savez(f, kernel=np.zeros((3, 2), np.float32)), "idf_words"),
    ],
)
def test_a_damaged_wide_part_is_a_bundle_error(
    small_bundle_dir: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    copy = shutil.copytree(small_bundle_dir, tmp_path / "bundle")
    damage(copy / SERVING_DIR / WIDE_FILE)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)
    assert load_keras_bundle(copy).runtime_name == "keras"  # the Keras model is still there
