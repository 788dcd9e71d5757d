"""The model builder: contract inputs/outputs, no Lambda layers, pretrained-weights option."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from rakuten_core.image import blank_image  # noqa: E402
from rakuten_core.inputs import model_inputs  # noqa: E402
from rakuten_train.model import build_model  # noqa: E402
from rakuten_train.params import load_params  # noqa: E402
from tests.utils.bundles import SMALL_PARAMS  # noqa: E402

TEXTS = ["Piscine hors sol tubulaire", "Roman policier poche", "Perceuse sans fil 18V"]


def test_model_follows_the_input_contract_and_has_no_lambda() -> None:
    params = load_params(None, SMALL_PARAMS)
    model = build_model(params, TEXTS, 27)
    assert sorted(model.input.keys()) == ["has_image", "image", "text"]
    assert model.outputs[0].shape[-1] == 27
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in kinds
    assert {"ModalityDropout", "TextNormalizer", "CharNgrams", "SublinearTfIdf"} <= kinds
    size = params.image_size
    probs = np.asarray(
        model.predict_on_batch(
            model_inputs(["", "Piscine"], [None, blank_image(size)], image_size=size)
        )
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_char_wb_analyzer_builds_word_bounded_char_ngrams() -> None:
    """``text.char_analyzer: char_wb`` reaches the layer; its vocabulary has no cross-word gram."""
    params = load_params(None, {**SMALL_PARAMS, "text.char_analyzer": "char_wb"})
    model = build_model(params, TEXTS, 27)
    assert model.get_layer("char_ngrams").word_bounded
    vocabulary = model.get_layer("char_counts").get_vocabulary()
    assert "e\u2581h" not in vocabulary  # "hors sol" / "piscine hors" would give it across words
    assert "\u2581hor" in vocabulary
    default = build_model(load_params(None, SMALL_PARAMS), TEXTS, 27)
    assert not default.get_layer("char_ngrams").word_bounded
    assert "e\u2581h" in default.get_layer("char_counts").get_vocabulary()


def test_missing_image_contributes_nothing_whatever_the_pixels() -> None:
    """has_image = 0 masks the image branch: the pixels then cannot change the answer."""
    params = load_params(None, SMALL_PARAMS)
    model = build_model(params, TEXTS, 27)
    size = params.image_size
    base = model_inputs(["Piscine"], [None], image_size=size)
    noisy = dict(base)
    noisy["image"] = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        np.asarray(model.predict_on_batch(noisy)), np.asarray(model.predict_on_batch(base))
    )


def test_backbone_starts_from_local_weights(tmp_path: Path) -> None:
    params = load_params(None, {**SMALL_PARAMS, "image_size": 32, "image.backbone": "mobilenet_v2"})
    donor = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg", alpha=0.35
    )
    weights = tmp_path / "mobilenet.weights.h5"
    donor.save_weights(weights)
    model = build_model(
        load_params(None, {**params.flat(), "image.weights": str(weights)}), TEXTS, 27
    )
    backbone = next(layer for layer in model.layers if "mobilenet" in layer.name)
    for got, want in zip(backbone.get_weights(), donor.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    path = tmp_path / "m.keras"
    model.save(path)
    keras.saving.load_model(path, safe_mode=True, compile=False)  # no Lambda inside


def test_missing_weights_file_is_refused(tmp_path: Path) -> None:
    params = load_params(
        None,
        {**SMALL_PARAMS, "image.backbone": "mobilenet_v2", "image.weights": str(tmp_path / "x")},
    )
    with pytest.raises(FileNotFoundError, match="image.weights"):
        build_model(params, TEXTS, 27)


def test_lstm_features_dropout_is_a_training_only_switch() -> None:
    """``text.lstm_dropout`` adds a Dropout on the LSTM features; 0 leaves the graph without it."""
    with_dropout = build_model(
        load_params(None, {**SMALL_PARAMS, "text.lstm_dropout": 0.5}), TEXTS, 27
    )
    without = build_model(load_params(None, {**SMALL_PARAMS, "text.lstm_dropout": 0.0}), TEXTS, 27)
    assert "lstm_dropout" in {layer.name for layer in with_dropout.layers}
    assert "lstm_dropout" not in {layer.name for layer in without.layers}
    feed = model_inputs(
        ["Piscine hors sol"], [None], image_size=load_params(None, SMALL_PARAMS).image_size
    )
    first = np.asarray(with_dropout.predict_on_batch(feed))
    np.testing.assert_allclose(np.asarray(with_dropout.predict_on_batch(feed)), first)


def test_lstm_branch_dropout_zeroes_whole_vectors_in_training_only() -> None:
    """``text.lstm_branch_dropout`` drops an example's entire LSTM vector, never part of it."""
    params = load_params(None, {**SMALL_PARAMS, "text.lstm_branch_dropout": 0.5})
    model = build_model(params, TEXTS, 27)
    branch = model.get_layer("lstm_branch_dropout")
    probe = keras.Model(model.inputs, [branch.input, branch.output])
    texts = [f"{TEXTS[i % 3]} {i}" for i in range(64)]
    feed = model_inputs(texts, [None] * 64, image_size=params.image_size)

    before, after = (np.asarray(t) for t in probe(feed, training=True))
    zeroed = np.all(after == 0, axis=1)
    assert 0 < zeroed.sum() < 64  # some examples dropped, some kept (p = 0.5, 64 draws)
    np.testing.assert_allclose(after[~zeroed], before[~zeroed] * 2.0, rtol=1e-5)  # 1 / (1 - p)

    before, after = (np.asarray(t) for t in probe(feed, training=False))
    np.testing.assert_array_equal(after, before)
    off = build_model(load_params(None, SMALL_PARAMS), TEXTS, 27)
    assert "lstm_branch_dropout" not in {layer.name for layer in off.layers}


def test_vocabularies_and_idf_learnt_batch_by_batch_equal_the_whole_corpus_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The vectorisers learn from the corpus in batches (the character n-grams of a full
    training split held at once took about 26 GB); the result is what the whole corpus at once
    gives: same vocabularies, same document frequencies."""
    import tensorflow as tf

    from rakuten_train import model as model_module
    from tests.utils.serve_bundle import training_rows

    monkeypatch.setattr(model_module, "ADAPT_BATCH", 7)  # many batches, a ragged last one
    texts = [t for t, _ in training_rows(150)]
    params = load_params(None, SMALL_PARAMS)
    model = build_model(params, texts, 27)
    corpus = tf.constant(np.asarray(texts, dtype=object).reshape(-1, 1))
    layers = {layer.name: layer for layer in model.layers}
    normalized = layers["text_normalizer"](corpus)
    for vectorizer, idf, feed in (
        ("word_counts", "word_tfidf", normalized),
        ("char_counts", "char_tfidf", layers["char_ngrams"](corpus)),
    ):
        whole = keras.layers.TextVectorization.from_config(layers[vectorizer].get_config())
        whole.adapt(feed)
        assert whole.get_vocabulary() == layers[vectorizer].get_vocabulary(), vectorizer
        size = int(whole.vocabulary_size())
        df = (np.asarray(whole(feed)).reshape(-1, size) > 0).sum(axis=0)
        expected = model_module.SublinearTfIdf(size)
        expected.set_document_frequencies(df.astype(np.float64), len(texts))
        np.testing.assert_allclose(
            layers[idf].get_weights()[0], expected.get_weights()[0], rtol=1e-6
        )
