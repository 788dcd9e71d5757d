"""A tiny but real Keras model satisfying the bundle input contract, saved with ``save_bundle``.

Used by the batch-prediction tests until (and besides) the training service's
``small_bundle_dir`` fixture: it has a real ``TextVectorization`` over the ``text`` input, a
real image branch over the uint8 ``image`` input gated by ``has_image``, and a softmax over the
27 categories, so predictions depend on both text and image and preprocessing differences show.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rakuten_core.bundle import BundleMetadata
from rakuten_core.categories import CATEGORIES
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT
from tests.utils.bundle_metadata import held_out_metrics, text_settings

DEFAULT_VOCABULARY = (
    "piscine pompe robot filtration livre roman magazine journal jeu console figurine "
    "carte puzzle jouet enfant bébé coussin drap lampe chaise table jardin outil perceuse "
    "chien chat stylo cahier poupée voiture lego manette dvd pc"
).split()


def build_tiny_model(
    *, image_size: int = 32, vocabulary: Iterable[str] = DEFAULT_VOCABULARY, seed: int = 7
) -> object:
    """A functional Keras model ``{text, image, has_image} -> (N, 27)`` probabilities."""
    import keras  # noqa: PLC0415  (heavy; only tests that need a model import it)

    keras.utils.set_random_seed(seed)
    text_in = keras.Input(shape=(1,), dtype="string", name=TEXT_INPUT)
    image_in = keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name=IMAGE_INPUT)
    has_image_in = keras.Input(shape=(1,), dtype="float32", name=HAS_IMAGE_INPUT)

    vectorize = keras.layers.TextVectorization(
        max_tokens=len(list(vocabulary)) + 2,
        output_mode="tf_idf",
        standardize="lower_and_strip_punctuation",
    )
    vectorize.adapt(list(vocabulary))
    tokens = keras.layers.Flatten()(vectorize(text_in))
    text_features = keras.layers.Dense(16, activation="relu")(tokens)

    pixels = keras.layers.Rescaling(1.0 / 255)(image_in)
    pixels = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(pixels)
    pixels = keras.layers.GlobalAveragePooling2D()(pixels)
    image_features = keras.layers.Dense(16, activation="relu")(pixels)
    image_features = keras.layers.Multiply()([image_features, has_image_in])

    merged = keras.layers.Concatenate()([text_features, image_features, has_image_in])
    outputs = keras.layers.Dense(len(CATEGORIES), activation="softmax", name="probabilities")(
        merged
    )
    return keras.Model([text_in, image_in, has_image_in], outputs, name="tiny_rakuten")


def make_predict_bundle(
    path: str | Path,
    *,
    image_size: int = 32,
    model_version: str = "tiny-1",
    seed: int = 7,
) -> Path:
    """Build the tiny model and save it as a bundle at ``path``."""
    model = build_tiny_model(image_size=image_size, seed=seed)
    metadata = BundleMetadata(
        model_name="rakuten-tiny-test",
        model_version=model_version,
        categories=list(CATEGORIES),
        image_size=image_size,
        text=text_settings(normalizer="keras lower_and_strip_punctuation", word_ngrams=1),
        params={"seed": seed},
        metrics=held_out_metrics(),
    )
    from rakuten_train.export.bundle import save_bundle  # noqa: PLC0415  (TensorFlow)

    return save_bundle(path, model, metadata)
