"""The multimodal Keras model: text (wide TF-IDF + deep LSTM) and image (CNN), fused.

Inputs and output follow :mod:`rakuten_core.inputs`. Everything the model needs at inference
(vocabularies, IDF weights, pixel scaling) lives inside it, built from Keras built-in layers and
the registered layers of :mod:`rakuten_train.layers`; no Lambda layer, so ``model.keras`` loads
with ``safe_mode=True`` and without this package.

::

    text ──ModalityDropout──▶ TextNormalizer ─┬─ TextVectorization(seq) ─ Embedding ─ (Bi)LSTM ─┐
    image ─┤ (train only)                      ├─ TextVectorization(word 1..N) ─ SublinearTfIdf ┤
    has_image                  CharNgrams ─────┴─ TextVectorization(char) ─ SublinearTfIdf ────┤
                                                        (wide: Dropout, Dense relu) ──────────┤
    image ─ Rescaling ─ [RandomFlip] ─ CNN ─ GAP ─ Dense ─ × has_image ─────────────────────────┤
    has_image ──────────────────────────────────────────────────────────────────────────────────┘
                                                  Concatenate ─ Dropout ─ Dense(C, softmax)

The LSTM features go through a Dropout and a branch Dropout (an example's whole vector at once),
both active in training only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT
from rakuten_train.layers import CharNgrams, ModalityDropout, SublinearTfIdf, TextNormalizer
from rakuten_train.params import ImageParams, TextParams, TrainParams

OUTPUT_NAME = "probabilities"
ADAPT_BATCH = 512  # rows per batch when the vectorisers learn their vocabularies and IDF


def build_model(params: TrainParams, train_texts: Sequence[str], num_classes: int) -> keras.Model:
    """Build (and adapt the vectorisers of) the model on the training texts only."""
    texts = tf.constant(np.asarray(list(train_texts), dtype=object).reshape(-1, 1))
    size = params.image_size
    text_in = keras.Input(shape=(1,), dtype="string", name=TEXT_INPUT)
    image_in = keras.Input(shape=(size, size, 3), dtype="uint8", name=IMAGE_INPUT)
    has_image_in = keras.Input(shape=(1,), dtype="float32", name=HAS_IMAGE_INPUT)

    text, image, has_image = ModalityDropout(
        params.modality_dropout_text,
        params.modality_dropout_image,
        seed=params.seed,
        name="modality_dropout",
    )([text_in, image_in, has_image_in])

    features = [
        *_text_branch(params.text, text, texts),
        _image_branch(params.image, image, has_image, size, params.seed),
        has_image,
    ]
    fused = keras.layers.Concatenate(name="fusion")(features)
    fused = keras.layers.Dropout(params.fusion_dropout, seed=params.seed)(fused)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)(fused)
    return keras.Model(
        {TEXT_INPUT: text_in, IMAGE_INPUT: image_in, HAS_IMAGE_INPUT: has_image_in},
        outputs,
        name="rakuten_multimodal",
    )


def _text_branch(p: TextParams, text: Any, corpus: tf.Tensor) -> list[Any]:
    normalizer = TextNormalizer(name="text_normalizer")
    normalized = normalizer(text)
    corpus_norm = normalizer(corpus)

    sequences = keras.layers.TextVectorization(
        max_tokens=p.max_tokens,
        standardize=None,
        output_sequence_length=p.sequence_length,
        name="lstm_vectorizer",
    )
    if p.lstm_units:
        sequences.adapt(corpus_norm)
    branches: list[Any] = []
    if p.lstm_units:
        tokens = keras.layers.Reshape((p.sequence_length,))(sequences(normalized))
        embedded = keras.layers.Embedding(
            p.max_tokens, p.embedding_dim, mask_zero=True, name="embedding"
        )(tokens)
        lstm = keras.layers.LSTM(p.lstm_units, name="lstm")
        deep = keras.layers.Bidirectional(lstm, name="bilstm") if p.bidirectional else lstm
        deep_features = deep(embedded)
        if p.lstm_dropout:  # on 2,000 real listings the LSTM overfits and drags the wide part
            deep_features = keras.layers.Dropout(p.lstm_dropout, name="lstm_dropout")(deep_features)
        if p.lstm_branch_dropout:  # the head must also classify from the wide part alone
            deep_features = keras.layers.Dropout(
                p.lstm_branch_dropout, noise_shape=(None, 1), name="lstm_branch_dropout"
            )(deep_features)
        branches.append(deep_features)

    wide: list[Any] = []
    if p.word_max_tokens:
        words = keras.layers.TextVectorization(
            max_tokens=p.word_max_tokens,
            standardize=None,
            ngrams=p.word_ngrams if p.word_ngrams > 1 else None,
            output_mode="count",
            name="word_counts",
        )
        words.adapt(corpus_norm)
        wide.append(_tfidf(words, normalized, _batches(corpus_norm), "word_tfidf"))
    if p.char_max_tokens:
        chargrams = CharNgrams(
            p.char_ngram_min,
            p.char_ngram_max,
            p.char_max_chars,
            word_bounded=p.char_analyzer == "char_wb",
            name="char_ngrams",
        )
        chars = keras.layers.TextVectorization(
            max_tokens=p.char_max_tokens, standardize=None, output_mode="count", name="char_counts"
        )
        # the corpus' n-grams batch by batch: held all at once they took about 0.35 MB per real
        # listing, some 26 GB for the full training split (docs/performance.md, cost curves)
        corpus_chars = _batches(corpus).map(chargrams)
        chars.adapt(corpus_chars)
        wide.append(_tfidf(chars, chargrams(text), corpus_chars, "char_tfidf"))
    if wide:
        merged = wide[0] if len(wide) == 1 else keras.layers.Concatenate(name="wide")(wide)
        merged = keras.layers.Dropout(p.wide_dropout, name="wide_dropout")(merged)
        if p.wide_units:
            merged = keras.layers.Dense(p.wide_units, activation="relu", name="wide_dense")(merged)
        branches.append(merged)
    return branches


def _batches(texts: tf.Tensor) -> tf.data.Dataset:
    """``texts`` ``(N, 1)`` in batches of :data:`ADAPT_BATCH` rows, for adapt and the IDF."""
    return tf.data.Dataset.from_tensor_slices(texts).batch(ADAPT_BATCH)


def _tfidf(vectorizer: Any, text: Any, corpus: tf.data.Dataset, name: str) -> Any:
    """Counts -> sublinear TF-IDF with IDF from ``corpus`` (document frequencies by batch)."""
    size = int(vectorizer.vocabulary_size())
    df = np.zeros(size, dtype=np.float64)
    documents = 0
    for batch in corpus:
        counts = np.asarray(vectorizer(batch)).reshape(-1, size)
        df += (counts > 0).sum(axis=0)
        documents += counts.shape[0]
    layer = SublinearTfIdf(size, name=name)
    layer.set_document_frequencies(df, documents)
    return layer(keras.layers.Reshape((size,))(vectorizer(text)))


def _image_branch(p: ImageParams, image: Any, has_image: Any, size: int, seed: int) -> Any:
    x = image
    if p.augment:
        x = keras.layers.RandomFlip("horizontal", seed=seed, name="image_flip")(x)
    if p.backbone == "cnn":
        x = keras.layers.Rescaling(1.0 / 255, name="image_rescale")(x)
        for i, filters in enumerate(p.filters):
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"conv{i}_bn")(x)
            x = keras.layers.Activation("relu")(x)
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="image_gap")(x)
    else:
        x = _backbone(p, size)(_backbone_scaling(p, x))
    x = keras.layers.Dense(p.units, activation="relu", name="image_dense")(x)
    # A missing image (has_image = 0) contributes exactly nothing to the fusion.
    return keras.layers.Multiply(name="image_mask")([x, has_image])


def _backbone_scaling(p: ImageParams, x: Any) -> Any:
    if p.backbone == "mobilenet_v2":  # expects [-1, 1]
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="image_rescale")(x)
    # EfficientNet includes its own rescaling/normalisation and expects [0, 255] floats.
    return keras.layers.Rescaling(1.0, name="image_rescale")(x)


def _backbone(p: ImageParams, size: int) -> keras.Model:
    """A keras.applications backbone, initialised from local weights when given (no hub)."""
    shape = (size, size, 3)
    if p.backbone == "mobilenet_v2":
        net = keras.applications.MobileNetV2(
            input_shape=shape, include_top=False, weights=None, pooling="avg", alpha=0.35
        )
    else:
        net = keras.applications.EfficientNetB0(
            input_shape=shape, include_top=False, weights=None, pooling="avg"
        )
    if p.weights:
        weights = Path(p.weights)
        if not weights.is_file():
            raise FileNotFoundError(f"image.weights {weights} not found")
        net.load_weights(weights)
    net.trainable = p.trainable
    return net


def compile_model(model: keras.Model, params: TrainParams) -> None:
    """Adam + sparse categorical cross-entropy (label smoothing needs one-hot, hence the loss)."""
    if params.label_smoothing:
        loss: Any = _SmoothedSparseLoss(params.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


class _SmoothedSparseLoss(keras.losses.Loss):  # type: ignore[misc]  # keras is untyped
    def __init__(self, smoothing: float) -> None:
        super().__init__(name="smoothed_sparse_cce")
        self.smoothing = smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.one_hot(keras.ops.reshape(y_true, (-1,)), y_pred.shape[-1])
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.smoothing)
