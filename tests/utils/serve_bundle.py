"""A small real bundle for the serving tests and benchmark, trained in seconds.

The model follows the input contract (``text``, ``image``, ``has_image``) and the training
service's shape in miniature: the registered core layers ``TextNormalizer`` and ``CharNgrams``
feed word and character TF-IDF vectorisers, a small CNN reads the image and is gated by
``has_image``. It is fitted for a few epochs on the real French listings in
``../shared/data/rakuten/text_fr`` (a built-in word list when that data is absent), so its
predictions are meaningful ("piscine" -> pool items) without being a mock.

Used until the training service's ``small_bundle_dir`` fixture is available, and by tests that
need a second, different bundle (hot reload) or a broken one.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rakuten_core.bundle import (
    METADATA_FILE,
    MODEL_FILE,
    ONNX_FILE,
    SERVING_DIR,
    BundleMetadata,
)
from rakuten_core.categories import CATEGORIES
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT
from rakuten_core.text import clean_text
from tests.utils.bundle_metadata import held_out_metrics, text_settings
from tests.utils.paths import SHARED_DATA

_FALLBACK = [
    ("piscine gonflable tubulaire pompe filtration", 2583),
    ("livre roman poche occasion", 10),
    ("magazine revue journal ancien", 2280),
    ("console jeu video manette", 60),
    ("figurine collection statuette", 1140),
    ("coussin housse drap linge de lit", 1920),
    ("chaise table jardin salon exterieur", 2582),
    ("perceuse outil visseuse", 2585),
    ("gamelle chien chat jouet animal", 2220),
    ("stylo cahier papeterie", 2522),
]


def training_rows(limit: int | None = None) -> list[tuple[str, int]]:
    """Real French listings (text, code), or a tiny built-in list when the data is absent."""
    path = SHARED_DATA / "text_fr" / "products.csv"
    if not path.is_file():
        return _FALLBACK * 20
    with path.open(encoding="utf-8") as handle:
        rows = [(clean_text(r["text"]), int(r["prdtypecode"])) for r in csv.DictReader(handle)]
    return rows[:limit] if limit else rows


def build_model(texts: list[str], *, image_size: int, seed: int) -> Any:
    import keras  # noqa: PLC0415  (heavy)

    from rakuten_train.layers import CharNgrams, TextNormalizer  # noqa: PLC0415

    keras.utils.set_random_seed(seed)
    corpus = np.asarray(texts, dtype=object).reshape(-1, 1)
    text_in = keras.Input(shape=(1,), dtype="string", name=TEXT_INPUT)
    image_in = keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name=IMAGE_INPUT)
    has_image_in = keras.Input(shape=(1,), dtype="float32", name=HAS_IMAGE_INPUT)

    normalizer = TextNormalizer(name="text_normalizer")
    words = keras.layers.TextVectorization(
        max_tokens=4000, standardize=None, ngrams=2, output_mode="tf_idf", name="words"
    )
    words.adapt(normalizer(corpus))
    ngrams = CharNgrams(2, 4, max_chars=300, name="char_ngrams")
    chars = keras.layers.TextVectorization(
        max_tokens=6000, standardize=None, output_mode="tf_idf", name="chars"
    )
    chars.adapt(ngrams(corpus))
    normalized = normalizer(text_in)
    wide = keras.layers.Concatenate()(
        [
            keras.layers.Flatten()(words(normalized)),
            keras.layers.Flatten()(chars(ngrams(text_in))),
        ]
    )
    wide = keras.layers.UnitNormalization()(wide)
    text_features = keras.layers.Dense(64, activation="relu")(wide)

    pixels = keras.layers.Rescaling(1.0 / 255)(image_in)
    for filters in (8, 16):
        pixels = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(pixels)
    pixels = keras.layers.GlobalAveragePooling2D()(pixels)
    image_features = keras.layers.Dense(16, activation="relu")(pixels)
    image_features = keras.layers.Multiply()([image_features, has_image_in])

    merged = keras.layers.Concatenate()([text_features, image_features, has_image_in])
    outputs = keras.layers.Dense(len(CATEGORIES), activation="softmax", name="probabilities")(
        merged
    )
    model = keras.Model(
        {TEXT_INPUT: text_in, IMAGE_INPUT: image_in, HAS_IMAGE_INPUT: has_image_in},
        outputs,
        name="serve_test_model",
    )
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy")
    return model


def make_serve_bundle(
    path: str | Path,
    *,
    image_size: int = 32,
    model_version: str = "serve-test-1",
    epochs: int = 4,
    seed: int = 7,
    rows: int | None = None,
) -> Path:
    """Train the small model on real listings and save it as a bundle at ``path``."""
    data = [(t, c) for t, c in training_rows(rows) if t]
    texts = [t for t, _ in data]
    index = {c.code: i for i, c in enumerate(CATEGORIES)}
    labels = np.asarray([index[c] for _, c in data], dtype=np.int32)
    model = build_model(texts, image_size=image_size, seed=seed)
    n = len(texts)
    rng = np.random.default_rng(seed)
    has_image = (rng.random(n) < 0.3).astype(np.float32).reshape(-1, 1)
    images = (rng.random((n, image_size, image_size, 3)) * 255).astype(np.uint8)
    images *= has_image.reshape(-1, 1, 1, 1).astype(np.uint8)
    import tensorflow as tf  # noqa: PLC0415

    inputs = {
        TEXT_INPUT: tf.constant(np.asarray(texts, dtype=object).reshape(-1, 1)),
        IMAGE_INPUT: tf.constant(images),
        HAS_IMAGE_INPUT: tf.constant(has_image),
    }
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).shuffle(n, seed=seed).batch(64)
    model.fit(dataset, epochs=epochs, verbose=0)
    metadata = BundleMetadata(
        model_name="rakuten-serve-test",
        model_version=model_version,
        categories=list(CATEGORIES),
        image_size=image_size,
        text=text_settings(char_ngrams=(2, 4)),  # word 1-2 and char 2-4 TF-IDF
        params={"epochs": epochs, "seed": seed},
        metrics=held_out_metrics(),
        mlflow_run_id=None,
    )
    from rakuten_train.export.bundle import save_bundle  # noqa: PLC0415  (TensorFlow)

    return save_bundle(path, model, metadata)


def make_broken_bundle(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose model files are corrupt (``bundle.json`` still valid).

    Both runtimes' files: ``model.keras`` and ``serving/model.onnx``.
    """
    shutil.copytree(source, target)
    (target / MODEL_FILE).write_bytes(b"this is not a keras archive")
    (target / SERVING_DIR / ONNX_FILE).write_bytes(b"this is not an onnx graph")
    assert (target / METADATA_FILE).is_file()
    return target
