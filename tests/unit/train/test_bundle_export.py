"""save_bundle (training) / load_bundle (the ONNX runtime) / load_keras_bundle (evaluation):
round trip, atomic replacement, re-export, and every way a bundle is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rakuten_core.bundle import (
    METADATA_FILE,
    MODEL_FILE,
    SERVING_DIR,
    BundleMetadata,
    load_bundle,
    read_metadata,
)
from rakuten_core.categories import CATEGORIES
from rakuten_core.drift import ProductFeatures, build_reference
from rakuten_core.errors import BundleError, ModelUnavailableError
from rakuten_core.image import blank_image
from rakuten_core.inputs import model_inputs
from rakuten_train.export import serving as export_module
from rakuten_train.export.bundle import export_bundle, load_keras_bundle, save_bundle
from tests.utils.bundle_metadata import held_out_metrics, text_settings

SIZE = 8


def _tiny_model(n_classes: int) -> Any:
    """A real Keras model with the contract's three inputs (vectoriser inside the model).

    The vectoriser is one the ONNX export supports (no standardisation, counts), so the bundle
    gets both runtimes.
    """
    import keras

    text = keras.Input(shape=(1,), dtype="string", name="text")
    image = keras.Input(shape=(SIZE, SIZE, 3), dtype="uint8", name="image")
    has_image = keras.Input(shape=(1,), dtype="float32", name="has_image")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=50, standardize=None, output_mode="count"
    )
    vectorizer.adapt(["piscine gonflable", "livre ancien", "jeu de société"])
    words = keras.layers.Flatten()(vectorizer(text))
    pixels = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image))
    fused = keras.layers.Concatenate()([words, pixels, has_image])
    out = keras.layers.Dense(n_classes, activation="softmax")(fused)
    return keras.Model({"text": text, "image": image, "has_image": has_image}, out)


def _metadata(**overrides: Any) -> BundleMetadata:
    fields: dict[str, Any] = {
        "model_version": "test-1",
        "categories": list(CATEGORIES),
        "image_size": SIZE,
        "text": text_settings(),
        "metrics": held_out_metrics(),
    }
    fields.update(overrides)
    return BundleMetadata(**fields)


@pytest.fixture(scope="module")
def tiny_model() -> Any:
    return _tiny_model(len(CATEGORIES))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_round_trip_predicts_the_same_probabilities(
    tmp_path: Path, tiny_model: Any, runtime: Any
) -> None:
    path = save_bundle(tmp_path / "bundle", tiny_model, _metadata())
    assert sorted(p.name for p in path.iterdir()) == [METADATA_FILE, MODEL_FILE, SERVING_DIR]
    bundle = load_bundle(path) if runtime == "onnx" else load_keras_bundle(path)
    assert bundle.runtime_name == runtime
    assert bundle.metadata.model_version == "test-1"
    assert bundle.categories.code_of(0) == CATEGORIES[0].code
    inputs = model_inputs(
        ["Piscine gonflable", ""], [np.full((SIZE, SIZE, 3), 90, np.uint8), None], image_size=SIZE
    )
    probs = bundle.predict_proba(inputs)
    assert probs.shape == (2, len(CATEGORIES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        probs, np.asarray(tiny_model.predict_on_batch(inputs)), rtol=1e-5, atol=1e-7
    )
    assert bundle.predict_proba(model_inputs([], [], image_size=SIZE)).shape == (0, 27)


@pytest.mark.slow
def test_saving_over_an_existing_bundle_replaces_it(tmp_path: Path, tiny_model: Any) -> None:
    save_bundle(tmp_path / "b", tiny_model, _metadata(model_version="v1"))
    save_bundle(tmp_path / "b", tiny_model, _metadata(model_version="v2"))
    assert read_metadata(tmp_path / "b").model_version == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or backup left


def _trained(n_classes: int) -> Any:
    """A compiled tiny model after two Adam steps: it holds optimizer state, as training's."""
    import tensorflow as tf

    model = _tiny_model(n_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    inputs = model_inputs(
        ["piscine gonflable", "livre ancien"], [np.full((SIZE, SIZE, 3), 90, np.uint8), None],
        image_size=SIZE,
    )  # fmt: skip
    features = {k: tf.constant(v) for k, v in inputs.items()}
    model.fit(features, np.array([1, 2]), epochs=2, verbose=0)
    return model, inputs


def _archive_groups(model_file: Path) -> set[str]:
    """Top-level groups of the weights file inside a ``.keras`` archive."""
    import io
    import zipfile

    import h5py

    with (
        zipfile.ZipFile(model_file) as archive,
        h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights,
    ):
        return set(weights.keys())


@pytest.mark.slow
def test_the_bundle_leaves_the_optimizer_state_out_and_predicts_the_same(tmp_path: Path) -> None:
    model, inputs = _trained(len(CATEGORIES))
    steps = int(model.optimizer.iterations.numpy())
    path = save_bundle(tmp_path / "bundle", model, _metadata())

    assert "optimizer" not in _archive_groups(path / MODEL_FILE)
    model.save(tmp_path / "with-optimizer.keras")  # what the bundle held before
    assert "optimizer" in _archive_groups(tmp_path / "with-optimizer.keras")
    assert (path / MODEL_FILE).stat().st_size < (tmp_path / "with-optimizer.keras").stat().st_size
    probs = load_keras_bundle(path).predict_proba(inputs)
    np.testing.assert_array_equal(probs, np.asarray(model.predict_on_batch(inputs), np.float32))
    # the caller's model is untouched: still compiled, its optimizer state kept
    assert model.compiled and int(model.optimizer.iterations.numpy()) == steps


@pytest.mark.slow
def test_a_bundle_saved_with_optimizer_state_still_loads(tmp_path: Path) -> None:
    model, inputs = _trained(len(CATEGORIES))
    path = save_bundle(tmp_path / "bundle", model, _metadata())
    model.save(path / MODEL_FILE)  # a bundle written before the optimizer was left out
    probs = load_keras_bundle(path).predict_proba(inputs)
    np.testing.assert_array_equal(probs, np.asarray(model.predict_on_batch(inputs), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_a_model_whose_classes_disagree_with_the_metadata_is_refused(
    tmp_path: Path, runtime: Any
) -> None:
    save_bundle(tmp_path / "b", _tiny_model(5), _metadata())
    load = load_bundle if runtime == "onnx" else load_keras_bundle
    with pytest.raises(BundleError, match="outputs 5 classes but bundle.json lists 27"):
        load(tmp_path / "b")


def test_missing_directory_or_files_are_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / METADATA_FILE).write_text(_metadata().model_dump_json())
    with pytest.raises(BundleError, match=r"model\.keras not found"):
        load_keras_bundle(tmp_path)
    with pytest.raises(BundleError, match=r"no ONNX export .*rakuten-train export"):
        load_bundle(tmp_path)
    assert issubclass(BundleError, ModelUnavailableError)


def test_corrupt_model_file_is_a_bundle_error(tmp_path: Path) -> None:
    (tmp_path / METADATA_FILE).write_text(_metadata().model_dump_json())
    (tmp_path / MODEL_FILE).write_bytes(b"PK\x03\x04 not really a keras zip")
    with pytest.raises(BundleError, match="could not be loaded"):
        load_keras_bundle(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"schema_version": 99}), "schema_version 99"),
        (json.dumps(["a list"]), "schema_version None"),
        (json.dumps({"schema_version": 1, "model_version": "x"}), "invalid"),
    ],
)
def test_bad_metadata_is_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / METADATA_FILE).write_text(content)
    with pytest.raises(BundleError, match=message):
        read_metadata(tmp_path)


def test_metadata_round_trips_through_json() -> None:
    row = ProductFeatures(
        prdtypecode=10,
        probability=0.9,
        text_length=20,
        has_description=True,
        has_image=True,
        image_brightness=120.0,
    )
    reference = build_reference([row], codes=[c.code for c in CATEGORIES])
    meta = _metadata(reference=reference, git_commit="abc123")
    again = BundleMetadata.model_validate_json(meta.model_dump_json())
    assert again == meta and again.reference == reference
    assert blank_image(SIZE).shape == (SIZE, SIZE, 3)


@pytest.mark.slow
def test_a_bundle_without_the_export_is_refused_until_rakuten_train_export_writes_it(
    tmp_path: Path, tiny_model: Any
) -> None:
    path = save_bundle(tmp_path / "old", tiny_model, _metadata(), serving=False)
    assert not (path / SERVING_DIR).exists()  # as bundles saved before the export were
    with pytest.raises(BundleError, match=f"no ONNX export.*`rakuten-train export {path}`"):
        load_bundle(path)
    export_bundle(path)
    inputs = model_inputs(["piscine gonflable"], [None], image_size=SIZE)
    np.testing.assert_allclose(
        load_bundle(path).predict_proba(inputs),
        np.asarray(tiny_model.predict_on_batch(inputs)),
        rtol=1e-5,
        atol=1e-7,
    )
    assert sorted(p.name for p in path.iterdir()) == [METADATA_FILE, MODEL_FILE, SERVING_DIR]


@pytest.mark.slow
def test_a_failed_re_export_leaves_the_bundle_as_it_was(
    tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_bundle(tmp_path / "b", tiny_model, _metadata())
    before = {p.name: p.read_bytes() for p in (path / SERVING_DIR).iterdir()}
    monkeypatch.setattr(export_module, "EXPORT_TOLERANCE", -1.0)  # any gap is too large
    with pytest.raises(BundleError, match="differs from the Keras model"):
        export_bundle(path)
    assert {p.name: p.read_bytes() for p in (path / SERVING_DIR).iterdir()} == before
    assert sorted(p.name for p in path.iterdir()) == [METADATA_FILE, MODEL_FILE, SERVING_DIR]


@pytest.mark.slow
def test_a_corrupt_onnx_export_is_a_bundle_error(tmp_path: Path, tiny_model: Any) -> None:
    path = save_bundle(tmp_path / "b", tiny_model, _metadata())
    (path / SERVING_DIR / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(BundleError, match=r"model\.onnx could not be loaded"):
        load_bundle(path)
    path = save_bundle(tmp_path / "c", tiny_model, _metadata())
    (path / SERVING_DIR / "text.json").write_text('{"words": 5}')  # JSON, not a text spec
    with pytest.raises(BundleError, match=r"text\.json could not be read"):
        load_bundle(path)
    assert load_keras_bundle(path).runtime_name == "keras"  # the Keras model is still there


@pytest.mark.slow
@pytest.mark.parametrize(
    ("vectorizer", "reason"),
    [
        ({"output_mode": "multi_hot"}, "only standardize=None"),  # Keras' own standardisation
        ({"standardize": None, "output_mode": "int"}, "without output_sequence_length"),
        (
            {"standardize": None, "output_mode": "count", "pad_to_max_tokens": True},
            "padded to max_tokens",
        ),
    ],
)
def test_a_model_the_export_cannot_split_is_refused_and_nothing_is_written(
    tmp_path: Path, vectorizer: dict[str, Any], reason: str
) -> None:
    import keras

    text = keras.Input(shape=(1,), dtype="string", name="text")
    image = keras.Input(shape=(SIZE, SIZE, 3), dtype="uint8", name="image")
    has_image = keras.Input(shape=(1,), dtype="float32", name="has_image")
    layer = keras.layers.TextVectorization(max_tokens=50, **vectorizer)
    layer.adapt(["piscine gonflable", "livre ancien"])
    if vectorizer["output_mode"] == "int":  # ids of any length: embedded and averaged
        ids = keras.layers.Reshape((-1,))(layer(text))
        words = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(60, 4)(ids))
    else:
        words = keras.layers.Flatten()(layer(text))
    fused = keras.layers.Concatenate()([words, keras.layers.Flatten()(image), has_image])
    out = keras.layers.Dense(27, activation="softmax")(fused)
    model = keras.Model({"text": text, "image": image, "has_image": has_image}, out)
    with pytest.raises(BundleError, match=reason):
        save_bundle(tmp_path / "b", model, _metadata())
    assert list(tmp_path.iterdir()) == []  # no half-written bundle, no staging directory


@pytest.mark.slow
def test_the_export_is_refused_when_the_runtimes_disagree(
    tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "EXPORT_TOLERANCE", -1.0)  # any gap is too large
    with pytest.raises(BundleError, match="differs from the Keras model"):
        save_bundle(tmp_path / "b", tiny_model, _metadata())
    assert list(tmp_path.iterdir()) == []
