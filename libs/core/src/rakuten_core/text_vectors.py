"""The model's text vectorisation in plain Python and NumPy, for the TensorFlow-free runtime.

A bundle's Keras model turns its ``text`` input into numbers with string layers
(:class:`rakuten_train.layers.TextNormalizer`, :class:`rakuten_train.layers.CharNgrams` and
Keras' ``TextVectorization``), which need TensorFlow. :class:`TextVectors` computes the same
tensors from the vocabularies those layers learnt, so that serving and batch prediction can run
the numeric rest of the model (``serving.onnx``) without importing TensorFlow (about 9 CPU
seconds of every process start). :func:`rakuten_train.export.serving.text_spec` writes the
vocabularies; the bundle tests check the tensors are equal to the Keras layers' on real listings.

What TensorFlow does, and how it is reproduced here:

- ``tf.strings.lower(encoding="utf-8")`` is ICU's full Unicode lower-casing: :meth:`str.lower`.
- ``regex_replace("[^\\pL\\pN\\s]+", " ")`` runs RE2, whose ``\\s`` is ASCII ``[\\t\\n\\f\\r ]``
  only (a no-break space is punctuation there). Python's ``re`` has no ``\\p{..}`` classes, so
  each distinct character is classified once with :func:`unicodedata.category` and cached.
- ``TextVectorization(split="whitespace")`` splits on ASCII whitespace; after normalisation a
  text holds single spaces only, so :meth:`str.split` gives the same tokens.
- Vocabulary lookups: index 0 is the padding (``int`` mode) or the out-of-vocabulary bucket
  (``count``, ``multi_hot``, ``tf_idf``); ``int`` mode maps unknown tokens to 1, truncates and
  pads at the end; ``tf_idf`` multiplies the counts by the layer's IDF weights.
- Character n-grams are counted for a whole batch with NumPy
  (:class:`rakuten_core.text_ngrams.CharGramIndex`): a 1,000-character text has about 4,000 of
  them, too many for one Python lookup each.

One job per module: :mod:`rakuten_core.text_spec` (what ``serving/text.json`` holds),
:mod:`rakuten_core.text_ngrams` (normalisation, the character n-gram index),
:mod:`rakuten_core.text_wide` (the sparse counts and the wide part), and this one, which puts
them together for a batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import chain, repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rakuten_core.text_ngrams import CharGramIndex, Normalizer
from rakuten_core.text_spec import INPUT_NAMES, SPACE_MARK, WIDE_FEATURES, TextSpec, Vocabulary
from rakuten_core.text_wide import SparseCounts, WideLayer, sparse_counts

_ASCII_SPACES = re.compile("[\t\n\v\f\r ]+")  # tf.strings.split's whitespace


class TextVectors:
    """The numeric text inputs of ``serving.onnx`` for a batch of cleaned product texts."""

    def __init__(self, spec: TextSpec, wide: WideLayer | None = None) -> None:
        if (wide is None) != (spec.wide is None) or (wide is not None and wide.spec != spec.wide):
            raise ValueError("a WideLayer is needed exactly when the spec has a wide part")
        self.spec = spec
        self.wide = wide
        self._normalize = Normalizer()
        vocabularies = {"sequences": spec.sequences, "words": spec.words, "chars": spec.chars}
        self._lookups = {
            name: {tok: i for i, tok in enumerate(vocab.tokens)}
            for name, vocab in vocabularies.items()
            if vocab is not None
        }
        self._char_index: CharGramIndex | None = None
        if spec.chars is not None and spec.char_ngrams is not None:
            try:
                self._char_index = CharGramIndex(
                    spec.chars.tokens, spec.char_ngrams.min_n, spec.char_ngrams.max_n
                )
            except OverflowError:  # a vocabulary of thousands of characters: string lookups
                self._char_index = None

    def normalize(self, text: str) -> str:
        return self._normalize(text)

    def char_pieces(self, normalized: str) -> list[str]:
        """The strings ``CharNgrams`` takes n-grams inside: the text, or each word (``char_wb``),
        cut to ``max_chars``, with a space mark at both ends and for every space."""
        spec = self.spec.char_ngrams
        if spec is None:
            return []
        text = normalized[: spec.max_chars]
        if spec.word_bounded:
            return [f"{SPACE_MARK}{w}{SPACE_MARK}" for w in text.split(" ") if w]
        return [f" {text} ".replace(" ", SPACE_MARK)]

    def char_ngrams(self, normalized: str) -> Iterator[str]:
        """``CharNgrams``' tokens of an already normalised text (all 2-grams, then 3-grams...)."""
        spec = self.spec.char_ngrams
        if spec is None:
            return iter(())
        pieces = self.char_pieces(normalized)
        # n consecutive characters, by zipping n shifted views (C loops, no index arithmetic)
        return chain.from_iterable(
            map("".join, zip(*(piece[k:] for k in range(n)), strict=False))  # shifted: unequal
            for n in range(spec.min_n, spec.max_n + 1)
            for piece in pieces
        )

    def __call__(self, texts: Sequence[str]) -> dict[str, NDArray[Any]]:
        """The ONNX inputs for cleaned texts: ``tokens``, then ``wide_features`` when the spec
        has a wide part, else the dense ``word_counts`` and ``char_counts`` (those it has)."""
        spec = self.spec
        normalized = [self._normalize(t) for t in texts]
        split: dict[bool, list[list[str]]] = {}  # the words of the normalised or raw texts, once

        def words(of_normalized: bool) -> list[list[str]]:
            if of_normalized not in split:
                split[of_normalized] = _words(normalized if of_normalized else texts)
            return split[of_normalized]

        out: dict[str, NDArray[Any]] = {}
        if spec.sequences is not None:
            out["tokens"] = self._sequences(words(spec.sequences.normalized), spec.sequences)
        counts: dict[str, SparseCounts] = {}
        if spec.words is not None:
            n = spec.words.ngrams
            grams = [_word_ngrams(w, n) for w in words(spec.words.normalized)]
            counts["words"] = self._counts("words", grams)
        if spec.chars is not None:
            if self._char_index is not None:
                counts["chars"] = self._char_index.counts([self.char_pieces(t) for t in normalized])
            else:
                counts["chars"] = self._counts("chars", [self.char_ngrams(t) for t in normalized])
        if self.wide is not None:
            out[WIDE_FEATURES] = self.wide(counts)
            counts = {role: m for role, m in counts.items() if role not in self.wide.spec.parts}
        vocabularies = {"words": spec.words, "chars": spec.chars}
        for role, matrix in counts.items():
            vocab = vocabularies[role]
            assert vocab is not None  # counted because the spec has it
            out[INPUT_NAMES[role]] = _weigh(matrix, vocab)
        return out

    def _sequences(self, words: list[list[str]], vocab: Vocabulary) -> NDArray[np.int64]:
        length = vocab.sequence_length or 1
        get = self._lookups["sequences"].get
        ids = np.zeros((len(words), length), dtype=np.int64)
        for row, all_tokens in enumerate(words):
            tokens = all_tokens[:length]
            ids[row, : len(tokens)] = list(map(get, tokens, repeat(1)))  # 1: out of vocabulary
        return ids

    def _counts(self, name: str, token_lists: Sequence[Iterable[str]]) -> SparseCounts:
        """Term counts ``(N, V)``; index 0 counts the out-of-vocabulary tokens."""
        get = self._lookups[name].get
        size = len(self._lookups[name])
        flat: list[int] = []
        for row, tokens in enumerate(token_lists):
            offset = row * size
            flat.extend(map(offset.__add__, map(get, tokens, repeat(0))))
        return sparse_counts(np.asarray(flat, dtype=np.int64), len(token_lists), size)


def _weigh(counts: SparseCounts, vocab: Vocabulary) -> NDArray[np.float32]:
    """Dense counts as the vectoriser's ``output_mode`` gives them (Keras: ``count * idf``,
    binary), weighed on the stored values only (a zero stays a zero either way)."""
    data = counts.data
    if vocab.mode == "multi_hot":
        data = np.minimum(data, 1.0)
    elif vocab.mode == "tf_idf" and vocab.idf is not None:
        data = data * np.asarray(vocab.idf, dtype=np.float32)[counts.indices]
    return replace(counts, data=data).toarray()


def _words(texts: Sequence[str]) -> list[list[str]]:
    """Whitespace tokens as ``TextVectorization`` splits them (ASCII whitespace only)."""
    return [[w for w in _ASCII_SPACES.split(t) if w] for t in texts]


def _word_ngrams(tokens: list[str], n: int) -> list[str]:
    grams = list(tokens)
    for width in range(2, n + 1):
        grams.extend(" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1))
    return grams
