"""The numpy stratified split: disjoint, complete, stratified, deterministic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rakuten_core.errors import InvalidInputError
from rakuten_data.distribution import REAL_CLASS_COUNTS, scale_counts
from rakuten_data.split import stratified_split, unsplittable_classes


def _labels(seed: int = 0) -> np.ndarray:
    counts = scale_counts(REAL_CLASS_COUNTS, 3000, min_per_class=10)
    labels = np.repeat(list(counts), list(counts.values()))
    return np.random.default_rng(seed).permutation(labels)


def test_splits_cover_every_row_once() -> None:
    labels = _labels()
    parts = stratified_split(labels, val_size=0.1, test_size=0.1, seed=42)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(len(labels)))
    assert all((np.diff(p) > 0).all() for p in parts.values())  # sorted, no repeats


def test_each_class_keeps_its_share_in_every_split() -> None:
    labels = _labels()
    parts = stratified_split(labels, val_size=0.1, test_size=0.2, seed=42)
    assert len(parts["val"]) == pytest.approx(300, abs=15)
    assert len(parts["test"]) == pytest.approx(600, abs=15)
    total = Counter(labels.tolist())
    for name, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        counts = Counter(labels[parts[name]].tolist())
        assert set(counts) == set(total)
        for code, n in total.items():
            assert counts[code] == pytest.approx(n * share, abs=1.0), (name, code)


def test_same_seed_same_split_other_seed_other_split() -> None:
    labels = _labels()
    first = stratified_split(labels, val_size=0.1, test_size=0.1, seed=1)
    again = stratified_split(labels, val_size=0.1, test_size=0.1, seed=1)
    other = stratified_split(labels, val_size=0.1, test_size=0.1, seed=2)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["val"], other["val"])


def test_small_classes_go_to_train_and_are_named() -> None:
    labels = np.array([10] * 20 + [40] * 2 + [50] * 1 + [60] * 3)
    parts = stratified_split(labels, val_size=0.1, test_size=0.1, seed=0)
    assert set(labels[parts["train"]]) == {10, 40, 50, 60}
    assert 40 not in labels[parts["val"]] and 50 not in labels[parts["test"]]
    # A class of three rows still gets one row in each split.
    assert [int((labels[parts[s]] == 60).sum()) for s in ("train", "val", "test")] == [1, 1, 1]
    assert unsplittable_classes(labels, val_size=0.1, test_size=0.1) == {40: 2, 50: 1}
    assert unsplittable_classes(labels, val_size=0.1, test_size=0.0) == {50: 1}


def test_without_val_or_test() -> None:
    labels = _labels()
    parts = stratified_split(labels, val_size=0.0, test_size=0.0, seed=0)
    assert len(parts["train"]) == len(labels) and len(parts["val"]) == len(parts["test"]) == 0


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5), (1.0, 0.0)])
def test_impossible_sizes_are_refused(val: float, test: float) -> None:
    with pytest.raises(InvalidInputError, match="must be in"):
        stratified_split([10, 40], val_size=val, test_size=test, seed=0)
