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
- Character n-grams are counted for a whole batch with NumPy (:class:`_CharGramIndex`): a
  1,000-character text has about 4,000 of them, too many for one Python lookup each.

The wide part (:class:`WideLayer`): a listing has about 1,200 distinct n-grams out of the
120,000 of a real model's vocabularies, so the counts are kept sparse (:class:`SparseCounts`,
SciPy's CSR layout in plain NumPy, so that the serving and prediction images need no SciPy)
and, when the bundle's export took the wide part out of the ONNX graph (``TextSpec.wide``), its
sublinear TF-IDF and Dense layer are computed here on the n-grams present only: as dense
``(N, V)`` tensors in ONNX Runtime they were three quarters of a model call.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

# Stands in for a space inside a character n-gram, so n-grams stay whitespace-free tokens
# (rakuten_train.layers.CharNgrams writes it too).
SPACE_MARK = "\u2581"
_RE2_SPACE = frozenset("\t\n\f\r ")
_SPACES = re.compile("[\t\n\f\r ]+")
_ASCII_SPACES = re.compile("[\t\n\v\f\r ]+")  # tf.strings.split's whitespace


class Vocabulary(BaseModel):
    """One ``TextVectorization`` layer's lookup, as ``get_vocabulary()`` lists it."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(description="Index i holds token i (0: padding or OOV bucket).")
    mode: str = Field(pattern="^(int|count|multi_hot|tf_idf)$")
    ngrams: int = Field(default=1, ge=1, description="Word n-grams 1..ngrams (count mode).")
    sequence_length: int | None = Field(default=None, ge=1, description="int mode: pad/cut.")
    normalized: bool = Field(default=True, description="Tokens of the normalised text.")
    idf: list[float] | None = Field(default=None, description="tf_idf mode: weight per index.")


class CharNgramSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_n: int = Field(ge=1)
    max_n: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    word_bounded: bool = False


WideRole = Literal["words", "chars"]


class WideSpec(BaseModel):
    """The wide part computed outside ONNX: each role's counts -> sublinear TF-IDF (one L2 norm
    per role), concatenated in ``parts`` order, -> one Dense layer. Its weights are the bundle's
    ``serving/wide.npz`` (:meth:`WideLayer.load`)."""

    model_config = ConfigDict(extra="forbid")

    parts: list[WideRole] = Field(min_length=1, description="Roles, in the kernel's row order.")
    activation: Literal["relu", "linear"]


class TextSpec(BaseModel):
    """Everything :class:`TextVectors` needs; the bundle's ``serving/text.json``."""

    model_config = ConfigDict(extra="forbid")

    sequences: Vocabulary | None = Field(default=None, description="The LSTM's token ids.")
    words: Vocabulary | None = Field(default=None, description="Word n-gram counts.")
    chars: Vocabulary | None = Field(default=None, description="Character n-gram counts.")
    char_ngrams: CharNgramSpec | None = None
    wide: WideSpec | None = Field(
        default=None, description="Set when the ONNX graph takes the wide part's output."
    )


WIDE_FEATURES = "wide_features"  # the ONNX input the wide part's output feeds
INPUT_NAMES = {"sequences": "tokens", "words": "word_counts", "chars": "char_counts"}
_L2_EPSILON = 1e-12  # tf.math.l2_normalize's


@dataclass(frozen=True, slots=True)
class SparseCounts:
    """A ``(rows, size)`` float32 matrix in CSR form (SciPy's ``csr_matrix`` layout): row ``r``
    holds ``data[indptr[r]:indptr[r + 1]]`` at the columns ``indices[indptr[r]:indptr[r + 1]]``,
    sorted and distinct. Only what the wide part and the dense inputs need."""

    data: NDArray[np.float32]
    indices: NDArray[np.int64]
    indptr: NDArray[np.int64]
    shape: tuple[int, int]

    def row_of(self) -> NDArray[np.int64]:
        """The row of each stored value."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def toarray(self) -> NDArray[np.float32]:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.row_of(), self.indices] = self.data
        return out


class WideLayer:
    """Sparse counts -> the wide Dense layer's output, as the Keras model computes it.

    ``SublinearTfIdf`` (:mod:`rakuten_train.layers`): ``(1 + ln count) * idf`` for each n-gram
    present, each role's row scaled to unit L2 norm; then ``activation(x @ kernel + bias)``. The
    product reads only the kernel rows of the n-grams present (about 1 % of a real model's): the
    roles' entries are merged row by row, then per row the kernel rows of its n-grams are
    gathered and multiplied by its weights in one BLAS matrix-vector product. On a real model's
    shapes that is as fast as SciPy's CSR product, and several times faster than one gather of
    the whole batch summed with ``np.add.reduceat`` (bench/text_vectors_numpy.py).
    """

    def __init__(
        self,
        spec: WideSpec,
        idf: Mapping[str, NDArray[np.float32]],
        kernel: NDArray[np.float32],
        bias: NDArray[np.float32],
    ) -> None:
        sizes = [idf[role].shape[0] if role in idf else 0 for role in spec.parts]
        if 0 in sizes or kernel.ndim != 2 or kernel.shape[0] != sum(sizes):
            raise ValueError(f"kernel {kernel.shape} does not match the IDF sizes {sizes}")
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"bias {bias.shape} does not match kernel {kernel.shape}")
        self.spec = spec
        self.units = int(kernel.shape[1])
        offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        self._parts = [
            (role, idf[role], offset) for role, offset in zip(spec.parts, offsets, strict=True)
        ]
        self._kernel = kernel  # the roles' rows one after the other, in spec.parts order
        self._bias = bias

    @classmethod
    def from_arrays(cls, spec: WideSpec, arrays: Mapping[str, Any]) -> WideLayer:
        """From the arrays of ``serving/wide.npz``: ``idf_<role>``, ``kernel``, ``bias``."""
        idf: dict[str, NDArray[np.float32]] = {
            role: np.asarray(arrays[f"idf_{role}"], dtype=np.float32) for role in spec.parts
        }
        kernel = np.ascontiguousarray(arrays["kernel"], dtype=np.float32)
        return cls(spec, idf, kernel, np.asarray(arrays["bias"], dtype=np.float32))

    @classmethod
    def load(cls, path: Path, spec: WideSpec) -> WideLayer:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with arrays:
            return cls.from_arrays(spec, arrays)

    def __call__(self, counts: Mapping[str, SparseCounts]) -> NDArray[np.float32]:
        rows = next(iter(counts.values())).shape[0]
        # one CSR matrix over the whole kernel: row r holds each role's entries in turn, so a
        # row costs one gather and one product (the Python loop, not the arithmetic, is what a
        # small model's batch spends its time in)
        indptr = np.sum([counts[role].indptr for role, _, _ in self._parts], axis=0)
        weights = np.empty(int(indptr[-1]), dtype=np.float32)
        columns = np.empty(int(indptr[-1]), dtype=np.int64)
        free = indptr[:-1].copy()  # where each row's next role's entries go
        for role, idf, offset in self._parts:
            matrix = counts[role]
            tf_idf = (1.0 + np.log(matrix.data, dtype=np.float32)) * idf[matrix.indices]
            row_of = matrix.row_of()
            norms = np.bincount(row_of, weights=tf_idf * tf_idf, minlength=rows)
            scale = (1.0 / np.sqrt(np.maximum(norms, _L2_EPSILON))).astype(np.float32)
            at = np.arange(tf_idf.size) + (free - matrix.indptr[:-1])[row_of]
            weights[at] = tf_idf * scale[row_of]
            columns[at] = matrix.indices + offset
            free += np.diff(matrix.indptr)
        out = np.zeros((rows, self.units), dtype=np.float32)
        bounds = indptr.tolist()
        kernel = self._kernel
        for row, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if start < stop:  # a row without any n-gram keeps zeros
                # take + dot into the row: half the overhead of kernel[...] and a temporary
                np.dot(weights[start:stop], kernel.take(columns[start:stop], axis=0), out=out[row])
        out += self._bias
        if self.spec.activation == "relu":
            np.maximum(out, 0.0, out=out)
        return out


class _Normalizer:
    """``TextNormalizer``: lower-case, non letter/digit/ASCII-space runs -> one space, strip."""

    def __init__(self) -> None:
        self._seen: frozenset[str] = frozenset()
        self._replace: dict[int, str] = {}  # str.translate table: punctuation -> " "
        self._lock = threading.Lock()

    def _learn(self, chars: set[str]) -> None:
        with self._lock:  # copy on write: readers keep using the table they hold
            replace = dict(self._replace)
            for ch in chars:
                if ch not in _RE2_SPACE and unicodedata.category(ch)[0] not in "LN":
                    replace[ord(ch)] = " "
            self._replace = replace
            self._seen = self._seen | chars

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        unseen = set(lowered) - self._seen
        if unseen:
            self._learn(unseen)
        return _SPACES.sub(" ", lowered.translate(self._replace)).strip(" ")


_BMP = 0x10000
_PIECE_SEPARATOR = "\x00"  # never in a normalised text (not a letter, digit or space)


class _CharGramIndex:
    """Character n-gram counts of a whole batch in NumPy: each n-gram as one int64 key.

    The vocabulary's characters get ids 1..A (0: any other character, A + 1: the separator
    between texts or words); an n-gram's key is its ids in base A + 2, one sorted key table per
    n. A text's n-grams are then a few array operations per n for the whole batch, instead of
    one Python string and dictionary lookup per n-gram (about 4,000 for a 1,000-character text).
    """

    def __init__(self, tokens: list[str], min_n: int, max_n: int) -> None:
        chars = sorted({ch for token in tokens[1:] for ch in token})  # tokens[0]: OOV bucket
        self.codes = np.asarray([ord(ch) for ch in chars], dtype=np.uint32)
        self.separator = len(chars) + 1
        self.base = len(chars) + 2
        # ids of the Basic Multilingual Plane by direct indexing; rarer characters searched
        self._bmp = np.zeros(_BMP, dtype=np.int64)
        bmp = self.codes < _BMP
        self._bmp[self.codes[bmp]] = np.flatnonzero(bmp) + 1
        if self.base**max_n >= 2**63:
            raise OverflowError(f"{len(chars)} characters: {max_n}-gram keys overflow int64")
        self.min_n, self.max_n, self.size = min_n, max_n, len(tokens)
        self.tables: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}
        for n in range(min_n, max_n + 1):
            index = np.asarray([i for i, t in enumerate(tokens) if i and len(t) == n], np.int64)
            joined = "".join(tokens[i] for i in index).encode("utf-32-le")
            ids = self._ids(np.frombuffer(joined, dtype=np.uint32)).reshape(index.size, n)
            keys = ids @ (self.base ** np.arange(n, dtype=np.int64))  # all n-grams at once
            order = np.argsort(keys, kind="stable")
            self.tables[n] = (keys[order], index[order])

    def _ids(self, codes: NDArray[np.uint32]) -> NDArray[np.int64]:
        ids = self._bmp[np.minimum(codes, _BMP - 1)]
        ids[codes == _BMP - 1] = 0  # U+FFFF is not a character; anything clipped to it neither
        rare = np.flatnonzero(codes >= _BMP)
        if rare.size and self.codes.size:
            pos = np.minimum(np.searchsorted(self.codes, codes[rare]), self.codes.size - 1)
            ids[rare] = np.where(self.codes[pos] == codes[rare], pos + 1, 0)
        return ids

    def counts(self, pieces: list[list[str]]) -> SparseCounts:
        """Counts ``(N, V)`` of the n-grams inside each piece of each row's ``pieces``."""
        rows = len(pieces)
        flat = [p for row in pieces for p in row]
        if not flat:
            return _csr(np.zeros(0, dtype=np.int64), rows, self.size)
        codes = np.frombuffer(
            (_PIECE_SEPARATOR.join(flat) + _PIECE_SEPARATOR).encode("utf-32-le"), dtype=np.uint32
        )
        ids = self._ids(codes)
        is_sep = codes == ord(_PIECE_SEPARATOR)
        ids[is_sep] = self.separator
        lengths = np.asarray([len(p) + 1 for p in flat], dtype=np.int64)
        row_of_piece = np.repeat(np.arange(rows), [len(row) for row in pieces])
        row = np.repeat(row_of_piece, lengths)  # the row of every position
        seps = np.concatenate([[0], np.cumsum(is_sep)])
        found: list[NDArray[np.int64]] = []
        for n in range(self.min_n, self.max_n + 1):
            starts = codes.size - n + 1
            if starts <= 0:
                continue
            key = np.zeros(starts, dtype=np.int64)
            for k in range(n):
                key += ids[k : k + starts] * self.base**k
            inside = seps[n : n + starts] == seps[:starts]  # no separator in the window
            keys, index = self.tables[n]
            if keys.size:
                pos = np.minimum(np.searchsorted(keys, key[inside]), keys.size - 1)
                hit = np.where(keys[pos] == key[inside], index[pos], 0)
            else:
                hit = np.zeros(int(inside.sum()), dtype=np.int64)
            found.append(row[:starts][inside] * self.size + hit)
        cells = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        return _csr(cells, rows, self.size)


def _csr(cells: NDArray[np.int64], rows: int, size: int) -> SparseCounts:
    """How often each ``row * size + index`` occurs in ``cells``, as a ``(rows, size)`` matrix."""
    keys, counts = np.unique(cells, return_counts=True)  # sorted: by row, then by index
    row, index = np.divmod(keys.astype(np.int64, copy=False), size)
    indptr = np.searchsorted(row, np.arange(rows + 1)).astype(np.int64, copy=False)
    return SparseCounts(counts.astype(np.float32), index, indptr, (rows, size))


class TextVectors:
    """The numeric text inputs of ``serving.onnx`` for a batch of cleaned product texts."""

    def __init__(self, spec: TextSpec, wide: WideLayer | None = None) -> None:
        if (wide is None) != (spec.wide is None) or (wide is not None and wide.spec != spec.wide):
            raise ValueError("a WideLayer is needed exactly when the spec has a wide part")
        self.spec = spec
        self.wide = wide
        self._normalize = _Normalizer()
        vocabularies = {"sequences": spec.sequences, "words": spec.words, "chars": spec.chars}
        self._lookups = {
            name: {tok: i for i, tok in enumerate(vocab.tokens)}
            for name, vocab in vocabularies.items()
            if vocab is not None
        }
        self._char_index: _CharGramIndex | None = None
        if spec.chars is not None and spec.char_ngrams is not None:
            try:
                self._char_index = _CharGramIndex(
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
        return _csr(np.asarray(flat, dtype=np.int64), len(token_lists), size)


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
