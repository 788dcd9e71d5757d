"""TextVectors (plain Python) against the Keras string layers it replaces, on real listings.

The production architecture (``rakuten_train.model.build_model``) is built and its vectorisers
adapted on the real French listings of ``../shared/data/rakuten/text_fr`` (the built-in word
list when that data is absent); :func:`rakuten_train.export.serving.text_spec` reads its
vocabularies, and every text must give the same token ids and counts in both, including texts
made to find the differences between ICU/RE2 and Python (casing, Unicode spaces, marks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rakuten_core.text import clean_text
from rakuten_core.text_spec import INPUT_NAMES, TextSpec
from rakuten_core.text_vectors import TextVectors
from tests.utils.serve_bundle import training_rows

pytestmark = pytest.mark.slow

HOSTILE = [
    "",
    " ",
    "İSTANBUL ΣΟΦΟΣ ΟΔΟΣ straße ǅemal ﬁnale Ⅻ ½ ٣ 𝟙",
    "prix\u00a0:\u202f10\u2009€ \u3000x\x0by\x1cz\u0085w\u2028v",
    "tab\tnew\nline\r\fform",
    "e\u0301te\u0301 cafe\u0301 CAFÉ Ça",
    "😀 emoji 👍🏽 ok ★★★ — « guillemets » l'été d’hiver",
    "a" * 3000,
    "x",
    "ab",
    "NO-SPACE_underscore_and-dash/slash.point,comma;",
    "日本語のテキスト 中文 한국어 العربية עברית",
]


def _texts() -> list[str]:
    return [t for t, _ in training_rows()] + [clean_text(t) or t for t in HOSTILE] + HOSTILE


def _model(analyzer: str, texts: list[str]) -> Any:
    from rakuten_train.model import build_model
    from rakuten_train.params import load_params
    from tests.utils.bundles import SMALL_PARAMS

    params = load_params(
        None,
        {
            **SMALL_PARAMS,
            "text.char_analyzer": analyzer,
            "text.char_ngram_min": 2,
            "text.char_ngram_max": 5,
            "text.word_ngrams": 2,
        },
    )
    return build_model(params, texts[:2000], num_classes=27)


def _keras_inputs(texts: list[str]) -> dict[str, Any]:
    """The model's three inputs for ``texts``, without images (the text layers ignore them)."""
    import tensorflow as tf

    n = len(texts)
    return {
        "text": tf.constant(np.asarray(texts, dtype=object).reshape(-1, 1)),
        "image": tf.zeros((n, 32, 32, 3), tf.uint8),
        "has_image": tf.zeros((n, 1)),
    }


@pytest.mark.parametrize("analyzer", ["char", "char_wb"])
def test_text_vectors_equal_the_keras_layers_on_real_listings(analyzer: str) -> None:
    import keras

    from rakuten_train.export.serving import text_spec

    texts = _texts()
    model = _model(analyzer, texts)
    spec, outputs = text_spec(model)
    assert spec.sequences and spec.words and spec.chars and spec.char_ngrams
    assert spec.char_ngrams.word_bounded == (analyzer == "char_wb")
    names = list(outputs)
    layers = keras.Model(model.inputs, list(outputs.values()))
    vectors = TextVectors(TextSpec.model_validate_json(spec.model_dump_json()))  # via JSON
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        n = len(chunk)
        expected = layers(_keras_inputs(chunk))
        got = vectors(chunk)
        for name, want in zip(names, expected, strict=True):
            want = np.asarray(want).reshape(n, -1)
            have = got[INPUT_NAMES[name]].reshape(n, -1)
            bad = np.flatnonzero((want != have).any(axis=1))
            assert bad.size == 0, f"{name} differs for {[chunk[i][:80] for i in bad[:3]]}"


def test_the_sparse_wide_part_equals_the_keras_layers_on_real_listings() -> None:
    """``WideLayer`` (sparse counts -> sublinear TF-IDF -> Dense relu) against the production
    model's own layers, from the text to the wide Dense layer's output: real listings, the
    hostile texts, an empty text (no n-gram: a zero row) and a batch of one."""
    import keras

    from rakuten_core.text_spec import WIDE_FEATURES
    from rakuten_core.text_wide import WideLayer
    from rakuten_train.export.serving import _wide_part, text_spec

    texts = _texts()
    model = _model("char", texts)
    spec, outputs = text_spec(model)
    dense = model.get_layer("wide_dense")
    rng = np.random.default_rng(5)
    dense.bias.assign(rng.normal(0, 0.05, dense.bias.shape).astype("float32"))  # not all zero
    wide = _wide_part(model, spec, outputs)
    assert wide is not None and wide.dense is dense
    assert wide.spec.parts == ["words", "chars"] and wide.spec.activation == "relu"
    layer = WideLayer.from_arrays(wide.spec, wide.arrays)  # what wide.npz holds
    vectors = TextVectors(spec.model_copy(update={"wide": wide.spec}), layer)
    keras_wide = keras.Model(model.inputs, dense.output)
    for chunk in [texts[i : i + 256] for i in range(0, len(texts), 256)] + [[""], [texts[0]]]:
        expected = keras_wide(_keras_inputs(chunk))
        got = vectors(chunk)
        assert set(got) == {"tokens", WIDE_FEATURES}  # no dense counts are built
        np.testing.assert_allclose(got[WIDE_FEATURES], np.asarray(expected), rtol=0, atol=1e-5)


def test_a_wide_part_needs_its_weights_and_matching_shapes() -> None:
    from rakuten_core.text_spec import Vocabulary, WideSpec
    from rakuten_core.text_wide import WideLayer

    wide = WideSpec(parts=["words"], activation="relu")
    words = Vocabulary(tokens=["[UNK]", "piscine", "livre"], mode="count")
    with pytest.raises(ValueError, match="exactly when"):
        TextVectors(TextSpec(words=words, wide=wide))  # no WideLayer for the spec's wide part
    idf = {"words": np.ones(3, np.float32)}
    with pytest.raises(ValueError, match="does not match the IDF sizes"):
        WideLayer(wide, idf, np.zeros((4, 2), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="bias"):
        WideLayer(wide, idf, np.zeros((3, 2), np.float32), np.zeros(3, np.float32))
    layer = WideLayer(wide, idf, np.eye(3, 2, dtype=np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="exactly when"):
        TextVectors(TextSpec(words=words), layer)  # a layer the spec does not describe
    out = TextVectors(TextSpec(words=words, wide=wide), layer)(["piscine piscine", "zzz", ""])
    # piscine: (1 + ln 2) * 1, normalised to 1, through the identity rows; zzz: the OOV bucket
    np.testing.assert_allclose(out["wide_features"], [[0, 1], [1, 0], [0, 0]], atol=1e-6)


def test_normalisation_follows_re2_and_icu() -> None:
    vectors = TextVectors(TextSpec())
    # RE2's \s is ASCII: a no-break or thin space is punctuation, so it becomes a space too
    assert vectors.normalize("Prix\u00a0:\u200910 €") == "prix 10"
    assert vectors.normalize("  ÉTÉ--Straße  ") == "été straße"
    assert vectors.normalize("l'été, c'est «top»!") == "l été c est top"
    assert vectors.normalize("x\u0301") == "x"  # a combining mark (Mn) is not a letter
    assert vectors.normalize("") == ""
    assert list(vectors.char_ngrams("ab")) == []  # no character n-grams without a spec


@pytest.mark.parametrize("word_bounded", [False, True])
def test_the_numpy_char_counts_equal_the_string_lookups(
    word_bounded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch n-gram keys (the default) against one string lookup per n-gram (the fallback
    for vocabularies of thousands of characters), on real listings and odd texts."""
    from collections import Counter

    from rakuten_core import text_ngrams
    from rakuten_core.text_spec import CharNgramSpec, Vocabulary

    texts = _texts()
    grams = CharNgramSpec(min_n=2, max_n=5, max_chars=400, word_bounded=word_bounded)
    probe = TextVectors(TextSpec(char_ngrams=grams))
    frequent = Counter(g for t in texts[:300] for g in probe.char_ngrams(probe.normalize(t)))
    tokens = ["[UNK]"] + [g for g, _ in frequent.most_common(3000)] + ["😀x", "zz"]
    spec = TextSpec(chars=Vocabulary(tokens=tokens, mode="count"), char_ngrams=grams)
    fast = TextVectors(spec)
    assert fast._char_index is not None

    def too_many_characters(*args: Any, **kwargs: Any) -> None:
        raise OverflowError("forced")

    monkeypatch.setattr(text_ngrams.CharGramIndex, "__init__", too_many_characters)
    slow = TextVectors(spec)
    assert slow._char_index is None
    for start in range(0, len(texts), 200):
        chunk = texts[start : start + 200]
        np.testing.assert_array_equal(fast(chunk)["char_counts"], slow(chunk)["char_counts"])
    assert fast([])["char_counts"].shape == (0, len(tokens))
