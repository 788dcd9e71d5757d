"""Text normalisation and character n-gram counting as the Keras text layers do them.

:class:`Normalizer` is ``rakuten_train.layers.TextNormalizer`` (ICU lower-casing, RE2's
punctuation rule); :class:`CharGramIndex` counts a whole batch's character n-grams in NumPy,
one int64 key per n-gram, instead of one Python lookup each (about 4,000 for a 1,000-character
text).
"""

from __future__ import annotations

import re
import threading
import unicodedata

import numpy as np
from numpy.typing import NDArray

from rakuten_core.text_wide import SparseCounts, sparse_counts

_RE2_SPACE = frozenset("\t\n\f\r ")
_SPACES = re.compile("[\t\n\f\r ]+")


class Normalizer:
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


class CharGramIndex:
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
            return sparse_counts(np.zeros(0, dtype=np.int64), rows, self.size)
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
        return sparse_counts(cells, rows, self.size)
