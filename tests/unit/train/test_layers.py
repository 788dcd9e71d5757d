"""The registered custom layers (rakuten_train.layers) the training service builds models from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from rakuten_train.layers import (  # noqa: E402
    SPACE_MARK,
    CharNgrams,
    ModalityDropout,
    SublinearTfIdf,
    TextNormalizer,
)


def _strings(t: Any) -> list[str]:
    return [s.decode("utf-8") for s in np.asarray(t).ravel()]


def test_normalizer_lowercases_unicode_and_strips_punctuation() -> None:
    out = TextNormalizer()(tf.constant([["ÉTÉ, Piscine!!  GONFLABLE (Ø 3m)"], ["  "]]))
    assert _strings(out) == ["été piscine gonflable ø 3m", ""]


def test_char_ngrams_are_space_marked_tokens_of_the_normalised_text() -> None:
    out = CharNgrams(2, 3)(tf.constant([["Ab C"], [""]]))
    m = SPACE_MARK
    first, empty = _strings(out)
    assert first.split(" ") == [
        f"{m}a", "ab", f"b{m}", f"{m}c", f"c{m}",
        f"{m}ab", f"ab{m}", f"b{m}c", f"{m}c{m}",
    ]  # fmt: skip
    assert empty == f"{m}{m}"  # every empty text gives the same single token


def test_char_ngrams_read_at_most_max_chars() -> None:
    long = CharNgrams(1, 1, max_chars=5)(tf.constant([["abcdefghij"]]))
    assert _strings(long)[0].split(" ") == [SPACE_MARK, "a", "b", "c", "d", "e", SPACE_MARK]


def test_word_bounded_char_ngrams_are_scikit_learns_char_wb() -> None:
    """``word_bounded`` gives exactly the n-grams of scikit-learn's ``char_wb`` analyzer."""
    from collections import Counter

    from sklearn.feature_extraction.text import CountVectorizer

    text = "Piscine gonflable 3 x 2 m, été À l'ombre"
    ours = _strings(CharNgrams(2, 5, word_bounded=True)(tf.constant([[text]])))[0].split(" ")
    normalised = _strings(TextNormalizer()(tf.constant([[text]])))[0]
    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    expected = [gram.replace(" ", SPACE_MARK) for gram in analyzer(normalised)]
    assert Counter(ours) == Counter(expected)
    assert f"e{SPACE_MARK}g" not in ours  # no n-gram spans two words (the char analyzer's do)
    assert _strings(CharNgrams(2, 3, word_bounded=True)(tf.constant([[""]]))) == [""]


def test_word_bounded_setting_survives_the_config() -> None:
    layer = CharNgrams(2, 4, max_chars=30, word_bounded=True)
    clone = CharNgrams.from_config(layer.get_config())
    sample = tf.constant([["Roman policier poche"]])
    assert clone.word_bounded
    assert _strings(clone(sample)) == _strings(layer(sample))


def test_char_ngrams_refuse_bad_range() -> None:
    with pytest.raises(ValueError, match="min_n"):
        CharNgrams(4, 2)


def _inputs(n: int) -> list[Any]:
    return [
        tf.constant([[f"produit {i}"] for i in range(n)]),
        tf.fill((n, 4, 4, 3), tf.constant(200, tf.uint8)),
        tf.ones((n, 1)),
    ]


def test_modality_dropout_is_identity_at_inference() -> None:
    layer = ModalityDropout(0.9, 0.9, seed=1)
    text, image, has = layer(_inputs(16), training=False)
    assert _strings(text) == [f"produit {i}" for i in range(16)]
    assert int(np.asarray(image).min()) == 200
    assert float(np.asarray(has).min()) == 1.0


def test_modality_dropout_blanks_like_a_missing_input_and_never_both() -> None:
    n = 4000
    text, image, has = ModalityDropout(0.3, 0.2, seed=3)(_inputs(n), training=True)
    texts = np.asarray(_strings(text))
    has_flat = np.asarray(has).ravel()
    pixels = np.asarray(image).reshape(n, -1)
    dropped_text = texts == ""
    dropped_image = has_flat == 0.0
    # A dropped image is exactly what inference sees for a missing one: zeros + has_image 0.
    assert (pixels[dropped_image] == 0).all()
    assert (pixels[~dropped_image] == 200).all()
    assert not (dropped_text & dropped_image).any()
    assert dropped_image.mean() == pytest.approx(0.2, abs=0.03)
    assert dropped_text.mean() == pytest.approx(0.3 * 0.8, abs=0.03)
    kept = ~dropped_text
    assert (texts[kept] == np.asarray([f"produit {i}" for i in range(n)])[kept]).all()


def test_modality_dropout_refuses_a_rate_of_one() -> None:
    with pytest.raises(ValueError, match="text_rate"):
        ModalityDropout(1.0, 0.0)


def test_sublinear_tfidf_matches_scikit_learn() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = ["piscine piscine piscine pompe", "pompe bache", "livre roman roman", "roman"]
    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+")
    expected = vec.fit_transform(corpus).toarray()
    vocab = vec.get_feature_names_out()
    counts = np.zeros((len(corpus), len(vocab)), dtype=np.float32)
    for row, doc in enumerate(corpus):
        for word in doc.split():
            counts[row, list(vocab).index(word)] += 1
    layer = SublinearTfIdf(len(vocab))
    layer.set_document_frequencies((counts > 0).sum(axis=0), len(corpus))
    np.testing.assert_allclose(np.asarray(layer(counts)), expected, rtol=1e-5, atol=1e-6)


def test_layers_survive_a_safe_mode_save_and_load(tmp_path: Path) -> None:
    text_in = keras.Input(shape=(1,), dtype="string", name="text")
    image_in = keras.Input(shape=(4, 4, 3), dtype="uint8", name="image")
    has_in = keras.Input(shape=(1,), dtype="float32", name="has_image")
    text, image, has = ModalityDropout(0.2, 0.2, seed=1)([text_in, image_in, has_in])
    vec = keras.layers.TextVectorization(max_tokens=50, standardize=None, output_mode="count")
    grams = CharNgrams(2, 3)
    vec.adapt(grams(tf.constant([["piscine"], ["livre"]])))
    size = int(vec.vocabulary_size())
    tfidf = SublinearTfIdf(size)
    tfidf.set_document_frequencies(np.arange(size) % 2, 2)
    words = keras.layers.TextVectorization(max_tokens=20, standardize=None, output_mode="count")
    words.adapt(TextNormalizer()(tf.constant([["piscine"], ["livre"]])))
    features = keras.layers.Concatenate()(
        [
            tfidf(keras.layers.Reshape((size,))(vec(grams(text)))),
            keras.layers.Reshape((int(words.vocabulary_size()),))(words(TextNormalizer()(text))),
            keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image)),
            has,
        ]
    )
    model = keras.Model(
        {"text": text_in, "image": image_in, "has_image": has_in},
        keras.layers.Dense(3, activation="softmax")(features),
    )
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    batch = {
        "text": tf.constant([["Piscine"], ["LIVRE ancien"]]),
        "image": tf.ones((2, 4, 4, 3), tf.uint8),
        "has_image": tf.ones((2, 1)),
    }
    np.testing.assert_allclose(
        np.asarray(loaded.predict_on_batch(batch)), np.asarray(model.predict_on_batch(batch))
    )
    assert np.asarray(loaded.get_layer(tfidf.name).idf).tolist() == np.asarray(tfidf.idf).tolist()
