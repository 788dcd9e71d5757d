"""Scores of a labelled run: the same definitions, keys and rounding as training evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from rakuten_core.categories import CATEGORIES, CODES, CategoryIndex
from rakuten_core.errors import InvalidInputError
from rakuten_predict.scoring import classification_metrics

INDEX = CategoryIndex()


def _by_code(metrics: dict) -> dict:  # type: ignore[type-arg]
    return {c["code"]: c for c in metrics["per_class"]}


def test_scores_match_hand_computed_values() -> None:
    # class 10: tp=2 fp=1 fn=0 -> p=2/3 r=1 f1=0.8 ; class 40: tp=1 fp=0 fn=1 -> p=1 r=.5 f1=2/3
    y_true = [10, 10, 40, 40]
    y_pred = [10, 10, 40, 10]
    m = classification_metrics(y_true, y_pred, INDEX)
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["weighted_f1"] == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3, abs=1e-6)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2, abs=1e-6)  # classes in the truth
    per_class = _by_code(m)
    assert per_class[10] == {
        "code": 10,
        "name": "Used book",
        "precision": pytest.approx(2 / 3, abs=1e-6),
        "recall": 1.0,
        "f1": 0.8,
        "support": 2,
    }
    assert per_class[40]["recall"] == pytest.approx(0.5)
    assert [c["code"] for c in m["per_class"]] == list(CODES)  # the bundle's order
    assert per_class[2583]["support"] == 0 and per_class[2583]["f1"] == 0.0


def test_weighted_f1_is_sklearns_and_macro_ignores_classes_absent_from_the_truth() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.choice(CODES[:10], size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.choice(CODES, size=300))
    m = classification_metrics(y_true.tolist(), y_pred.tolist(), INDEX)
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"), abs=1e-6)
    present = sorted(set(y_true.tolist()))
    assert m["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro"), abs=1e-6
    )
    assert m["macro_f1"] != pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-6)


def test_same_figures_as_the_training_evaluation() -> None:
    evaluation = pytest.importorskip("rakuten_train.evaluation")
    rng = np.random.default_rng(1)
    idx_true = rng.integers(0, 20, size=500)
    idx_pred = np.where(rng.random(500) < 0.5, idx_true, rng.integers(0, 27, size=500))
    theirs = evaluation.scores(idx_true, idx_pred, INDEX)
    ours = classification_metrics(
        [INDEX.code_of(int(i)) for i in idx_true], [INDEX.code_of(int(i)) for i in idx_pred], INDEX
    )
    assert ours == theirs


def test_unknown_true_codes_are_scored_not_dropped() -> None:
    m = classification_metrics([10, 9999], [10, 10], INDEX)
    assert m["per_class"][-1] == {
        "code": 9999, "name": None, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1,
    }  # fmt: skip
    assert len(m["per_class"]) == len(CATEGORIES) + 1
    assert m["accuracy"] == pytest.approx(0.5)


def test_empty_and_mismatched_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        classification_metrics([], [], INDEX)
    with pytest.raises(ValueError, match="2 labels but 1"):
        classification_metrics([10, 40], [10], INDEX)
