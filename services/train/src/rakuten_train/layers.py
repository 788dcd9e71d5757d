"""Custom Keras layers a bundle's model may contain.

Only training builds, saves and loads the Keras model (serving and batch prediction run the
ONNX export, :mod:`rakuten_train.export`), so the layers live here, beside the model. Every
layer is registered with ``keras.saving.register_keras_serializable(package="rakuten")``:
a saved ``model.keras`` names them ``rakuten>...``, not by module, so bundles saved when they
lived in ``rakuten_core.layers`` load the same once this module is imported.

- :class:`TextNormalizer`: Unicode-aware lower-casing and punctuation stripping (Keras'
  built-in standardisation lower-cases ASCII only, so ``"ÉTÉ"`` and ``"été"`` would differ).
- :class:`CharNgrams`: the text as a whitespace-separated string of character n-grams, to feed
  a ``TextVectorization(standardize=None)`` in ``tf_idf``/``multi_hot`` mode (the "wide" part).
- :class:`ModalityDropout`: during training only, blanks the text (``""``) and/or the image
  (``has_image = 0``, zero pixels) of random examples, exactly as a product without text or
  without image looks at inference, so the model learns to answer from one modality.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rakuten_core.text_spec import SPACE_MARK

_PACKAGE = "rakuten"
# Everything that is not a letter, a digit or whitespace becomes a space (accents are letters).
_PUNCTUATION = r"[^\pL\pN\s]+"
_SPACES = r"\s+"


def _normalise(text: tf.Tensor) -> tf.Tensor:
    lowered = tf.strings.lower(text, encoding="utf-8")
    stripped = tf.strings.regex_replace(lowered, _PUNCTUATION, " ")
    return tf.strings.strip(tf.strings.regex_replace(stripped, _SPACES, " "))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TextNormalizer(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Lower-cases (Unicode), replaces punctuation by spaces and collapses whitespace."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "string")
        super().__init__(**kwargs)
        self.supports_masking = False

    def call(self, inputs: Any) -> Any:
        return _normalise(tf.convert_to_tensor(inputs, dtype=tf.string))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def compute_output_spec(self, inputs: Any) -> Any:
        return keras.KerasTensor(inputs.shape, dtype="string")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CharNgrams(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Character n-grams of the normalised text, joined by spaces into one string per example.

    Spaces inside an n-gram are written :data:`SPACE_MARK`, the text is padded with one space
    at each end (word boundaries become visible), and only its first ``max_chars`` characters
    are used, which bounds the cost of very long descriptions.

    ``word_bounded=True`` takes the n-grams inside each word padded with one space at each end
    instead of across the whole text (scikit-learn's ``char_wb`` analyzer, where ``False`` is
    its ``char``): no n-gram spans two words, so the same vocabulary size keeps more of the
    n-grams that say something about a word. A word shorter than ``n`` gives no ``n``-gram.
    """

    def __init__(
        self,
        min_n: int = 2,
        max_n: int = 5,
        max_chars: int = 1000,
        word_bounded: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "string")
        super().__init__(**kwargs)
        if not 1 <= min_n <= max_n:
            raise ValueError(f"need 1 <= min_n <= max_n, got {min_n}, {max_n}")
        self.min_n = int(min_n)
        self.max_n = int(max_n)
        self.max_chars = int(max_chars)
        self.word_bounded = bool(word_bounded)

    def call(self, inputs: Any) -> Any:
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        shape = tf.shape(text)
        flat = tf.reshape(text, [-1])
        flat = tf.strings.substr(_normalise(flat), 0, self.max_chars, unit="UTF8_CHAR")
        if self.word_bounded:
            words = tf.strings.split(flat)  # (batch, words), ragged
            words = tf.ragged.map_flat_values(
                lambda w: tf.strings.join([SPACE_MARK, w, SPACE_MARK]), words
            )
            chars = tf.strings.unicode_split(words, "UTF-8")  # (batch, words, chars)
            grams = [
                tf.strings.ngrams(chars, ngram_width=n, separator="").merge_dims(1, 2)
                for n in range(self.min_n, self.max_n + 1)
            ]
        else:
            flat = tf.strings.regex_replace(tf.strings.join([" ", flat, " "]), " ", SPACE_MARK)
            chars = tf.strings.unicode_split(flat, "UTF-8")
            grams = [
                tf.strings.ngrams(chars, ngram_width=n, separator="")
                for n in range(self.min_n, self.max_n + 1)
            ]
        joined = tf.strings.reduce_join(tf.concat(grams, axis=1), axis=1, separator=" ")
        return tf.reshape(joined, shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def compute_output_spec(self, inputs: Any) -> Any:
        return keras.KerasTensor(inputs.shape, dtype="string")

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            min_n=self.min_n,
            max_n=self.max_n,
            max_chars=self.max_chars,
            word_bounded=self.word_bounded,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ModalityDropout(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Randomly removes one modality of an example, in training only.

    Called on ``[text, image, has_image]``; returns the three tensors with, for a random subset
    of examples, the text replaced by ``""`` (probability ``text_rate``) or the image replaced by
    zeros and ``has_image`` by 0 (probability ``image_rate``). Never both for one example: when
    both draws hit, only the image is removed. At inference the inputs pass through unchanged.
    """

    def __init__(
        self,
        text_rate: float = 0.2,
        image_rate: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, rate in (("text_rate", text_rate), ("image_rate", image_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        self.text_rate = float(text_rate)
        self.image_rate = float(image_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        text, image, has_image = inputs
        if not training or (self.text_rate == 0.0 and self.image_rate == 0.0):
            return [text, image, has_image]
        batch = tf.shape(has_image)[0]
        draws = keras.random.uniform((batch, 2), seed=self.seed_generator)
        drop_image = draws[:, 1] < self.image_rate
        drop_text = tf.logical_and(draws[:, 0] < self.text_rate, tf.logical_not(drop_image))
        text_mask = tf.reshape(drop_text, [-1] + [1] * (len(text.shape) - 1))
        new_text = tf.where(text_mask, tf.zeros_like(text), text)
        keep = tf.cast(tf.logical_not(drop_image), has_image.dtype)
        new_has_image = has_image * tf.reshape(keep, [-1, 1])
        keep_pixels = tf.cast(tf.reshape(keep, [-1, 1, 1, 1]), image.dtype)
        return [new_text, image * keep_pixels, new_has_image]

    def compute_output_spec(self, inputs: Any, training: bool | None = None) -> Any:
        text, image, has_image = inputs
        return [
            keras.KerasTensor(text.shape, dtype=text.dtype),
            keras.KerasTensor(image.shape, dtype=image.dtype),
            keras.KerasTensor(has_image.shape, dtype=has_image.dtype),
        ]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(text_rate=self.text_rate, image_rate=self.image_rate, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SublinearTfIdf(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Term counts ``(N, V)`` -> L2-normalised sublinear TF-IDF, as scikit-learn computes it.

    ``(1 + log(count)) * idf`` for present terms, 0 otherwise, then each row scaled to unit
    L2 norm. ``idf`` is a non-trainable weight set once from the training corpus with
    :meth:`set_document_frequencies` (``idf = ln((1 + n_docs) / (1 + df)) + 1``, scikit-learn's
    smoothed formula). Keras' own ``tf_idf`` mode uses raw counts and another IDF, which on the
    real French listings costs about 15 points of weighted F1 with the same linear classifier.
    """

    def __init__(self, vocabulary_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)

    def build(self, input_shape: Any) -> None:
        self.idf = self.add_weight(
            name="idf",
            shape=(self.vocabulary_size,),
            initializer="ones",
            trainable=False,
        )
        super().build(input_shape)

    def set_document_frequencies(self, df: Any, n_docs: int) -> None:
        """Set ``idf`` from per-term document frequencies over ``n_docs`` training texts."""
        freq = np.asarray(df, dtype=np.float64)
        if freq.shape != (self.vocabulary_size,):
            raise ValueError(f"df has shape {freq.shape}, expected ({self.vocabulary_size},)")
        if not self.built:
            self.build((None, self.vocabulary_size))
        self.idf.assign((np.log((1.0 + n_docs) / (1.0 + freq)) + 1.0).astype("float32"))

    def call(self, inputs: Any) -> Any:
        counts = tf.cast(inputs, self.compute_dtype)
        present = counts > 0
        tf_part = tf.where(present, 1.0 + tf.math.log(tf.maximum(counts, 1.0)), 0.0)
        weighted = tf_part * self.idf
        return tf.math.l2_normalize(weighted, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size)
        return config
