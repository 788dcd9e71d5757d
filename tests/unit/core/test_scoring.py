"""The one scoring implementation: hand-checked values, sklearn's definitions, the edge rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from rakuten_core.categories import CATEGORIES, CODES, CategoryIndex
from rakuten_core.errors import InvalidInputError
from rakuten_core.scoring import classification_metrics, codes_of, confusion, modality_metrics

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
    assert [c["code"] for c in m["per_class"]] == list(CODES)  # the categories' order
    assert per_class[2583]["support"] == 0 and per_class[2583]["f1"] == 0.0


def test_weighted_f1_is_sklearns_and_macro_ignores_classes_absent_from_the_truth() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.choice(CODES[:10], size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.choice(CODES, size=300))
    m = classification_metrics(y_true, y_pred, INDEX)
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"), abs=1e-6)
    present = sorted(set(y_true.tolist()))
    assert m["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro"), abs=1e-6
    )
    assert m["macro_f1"] != pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-6)


def test_a_class_predicted_but_absent_from_the_truth_does_not_lower_macro_f1() -> None:
    m = classification_metrics([10, 10], [10, 50], INDEX)
    assert m["macro_f1"] == pytest.approx(2 / 3, abs=1e-6)  # only class 10 (F1 = 2/3)


def test_unknown_true_codes_are_scored_not_dropped() -> None:
    m = classification_metrics([10, 9999], [10, 10], INDEX)
    assert m["per_class"][-1] == {
        "code": 9999, "name": None, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1,
    }  # fmt: skip
    assert len(m["per_class"]) == len(CATEGORIES) + 1
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx(f1_score([10, 9999], [10, 10], average="weighted"))


def test_unknown_predicted_codes_are_listed_and_count_as_errors() -> None:
    m = classification_metrics([10, 10, 40], [10, 7777, 40], INDEX)
    assert m["per_class"][-1]["code"] == 7777 and m["per_class"][-1]["support"] == 0
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert _by_code(m)[10]["recall"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx(
        f1_score([10, 10, 40], [10, 7777, 40], average="weighted"), abs=1e-6
    )


def test_empty_and_mismatched_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no labelled rows"):
        classification_metrics([], [], INDEX)
    with pytest.raises(ValueError, match="2 labels but 1"):
        classification_metrics([10, 40], [10], INDEX)


def test_modality_metrics_headline_is_the_fused_one() -> None:
    truth = [10, 40, 50, 50]
    m = modality_metrics(
        truth,
        {"fused": [10, 40, 50, 10], "text_only": [10, 40, 40, 40], "image_only": [60] * 4},
        INDEX,
    )
    fused = classification_metrics(truth, [10, 40, 50, 10], INDEX)
    assert m["split"] == "test"
    assert (m["weighted_f1"], m["macro_f1"], m["accuracy"], m["n"]) == (
        fused["weighted_f1"], fused["macro_f1"], fused["accuracy"], 4,
    )  # fmt: skip
    assert m["modalities"]["fused"] == fused
    assert m["image_only_weighted_f1"] == 0.0
    assert (
        m["text_only_weighted_f1"]
        == classification_metrics(truth, [10, 40, 40, 40], INDEX)["weighted_f1"]
    )
    with pytest.raises(InvalidInputError, match="fused"):
        modality_metrics(truth, {"text_only": truth}, INDEX)


def test_confusion_rows_are_true_codes_in_category_order() -> None:
    matrix = confusion([10, 10, 50, 9999], [10, 40, 10, 10], INDEX)
    assert matrix.shape == (27, 27) and matrix.sum() == 3  # the unknown code has no cell
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[2, 0] == 1


def test_indices_map_to_the_categories_own_codes() -> None:
    reordered = CategoryIndex(tuple(reversed(CATEGORIES)))
    assert codes_of([0, 26], reordered) == [2905, 10]
    assert codes_of(np.asarray([0, 1]), INDEX) == [10, 40]


@pytest.mark.parametrize("seed", range(6))
def test_scores_and_confusion_equal_sklearns_on_random_labels(seed: int) -> None:
    """The NumPy scores against scikit-learn's (``zero_division=0``): codes unknown to the
    categories on both sides, classes never predicted, classes never true."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    pool = np.asarray([*rng.choice(CODES, size=int(rng.integers(1, 20)), replace=False), 9999])
    y_true = rng.choice(pool[:-1] if seed % 3 == 0 else pool, size=n)  # 9999: unknown
    noise = rng.choice([*CODES[:5], 7777], size=n)  # 7777: predicted only, unknown
    y_pred = np.where(rng.random(n) < rng.uniform(0, 1), y_true, noise)
    m = classification_metrics(y_true, y_pred, INDEX)
    labels = [c["code"] for c in m["per_class"]]
    assert labels[: len(CODES)] == list(CODES)
    assert set(labels[len(CODES) :]) == set(np.concatenate([y_true, y_pred]).tolist()) - set(CODES)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    for got, p, r, f, s in zip(m["per_class"], precision, recall, f1, support, strict=True):
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == (
            round(float(p), 6), round(float(r), 6), round(float(f), 6), int(s),
        )  # fmt: skip
    assert m["weighted_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0), abs=1e-6
    )
    never_predicted = [c for c in labels if c not in set(y_pred.tolist())]
    never_true = [c for c in labels if c not in set(y_true.tolist())]
    assert never_predicted and never_true  # the edge cases are exercised
    if set(y_true.tolist()) & set(CODES):  # sklearn refuses when no true code is a category
        np.testing.assert_array_equal(
            confusion(y_true, y_pred, INDEX), confusion_matrix(y_true, y_pred, labels=list(CODES))
        )


def test_confusion_of_codes_all_unknown_is_empty() -> None:
    """sklearn raises when no true code is a category; every row here is left out instead."""
    matrix = confusion([9999, 9998], [10, 40], INDEX)
    assert matrix.shape == (27, 27) and matrix.sum() == 0 and matrix.dtype == np.int64
