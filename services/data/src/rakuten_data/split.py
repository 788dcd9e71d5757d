"""Stratified train/val/test split with a fixed seed, in numpy (no scikit-learn in this image).

Each class is shuffled with the seeded generator and cut in proportion to the requested sizes,
so every split keeps the class imbalance of the whole. A class with at least three rows gets at
least one row in each non-empty split; a smaller class cannot be stratified and goes entirely to
train (reported by the caller), so a rare class is still learnt even if it cannot be evaluated.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rakuten_core.dataset import SPLITS
from rakuten_core.errors import InvalidInputError

IntArray = NDArray[np.int64]


def _class_sizes(n: int, val_size: float, test_size: float) -> tuple[int, int, int]:
    """(train, val, test) row counts for one class of ``n`` rows."""
    wanted = [s > 0 for s in (val_size, test_size)]
    if n < 1 + sum(wanted):
        return n, 0, 0
    n_val = int(np.floor(n * val_size + 0.5))
    n_test = int(np.floor(n * test_size + 0.5))
    n_val = max(n_val, 1) if wanted[0] else 0
    n_test = max(n_test, 1) if wanted[1] else 0
    while n - n_val - n_test < 1:  # keep at least one training row
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        elif n_test > 1:
            n_test -= 1
        else:
            break
    return n - n_val - n_test, n_val, n_test


def stratified_split(
    labels: IntArray | list[int], *, val_size: float, test_size: float, seed: int
) -> dict[str, IntArray]:
    """Positions of ``labels`` per split (``train``/``val``/``test``), each sorted ascending.

    Raises:
        InvalidInputError: sizes out of range.
    """
    if not (0 <= val_size < 1 and 0 <= test_size < 1 and val_size + test_size < 1):
        raise InvalidInputError(
            f"val size {val_size} and test size {test_size} must be in [0, 1) and sum below 1"
        )
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[IntArray]] = {name: [] for name in SPLITS}
    for code in np.unique(y):  # sorted: the draw order does not depend on row order
        members = rng.permutation(np.flatnonzero(y == code))
        n_train, n_val, _ = _class_sizes(len(members), val_size, test_size)
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {
        name: np.sort(np.concatenate(chunks)).astype(np.int64) if chunks else np.empty(0, np.int64)
        for name, chunks in parts.items()
    }


def unsplittable_classes(
    labels: IntArray | list[int], *, val_size: float, test_size: float
) -> dict[int, int]:
    """Classes too small to appear in every requested split, with their row counts."""
    y = np.asarray(labels, dtype=np.int64)
    codes, counts = np.unique(y, return_counts=True)
    needed = 1 + (val_size > 0) + (test_size > 0)
    return {int(c): int(n) for c, n in zip(codes, counts, strict=True) if n < needed}
