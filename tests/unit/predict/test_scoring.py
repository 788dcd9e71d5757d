"""Scores of a labelled run: the challenge's weighted F1 plus macro F1, accuracy, per class."""

from __future__ import annotations

import pytest

from rakuten_core.categories import CODES
from rakuten_core.errors import InvalidInputError
from rakuten_predict.scoring import classification_metrics


def test_scores_match_hand_computed_values() -> None:
    # class 10: tp=2 fp=1 fn=0 -> p=2/3 r=1 f1=0.8 ; class 40: tp=1 fp=0 fn=1 -> p=1 r=.5 f1=2/3
    y_true = [10, 10, 40, 40]
    y_pred = [10, 10, 40, 10]
    m = classification_metrics(y_true, y_pred, codes=CODES)
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["f1_weighted"] == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3)
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)  # only the codes that occur
    assert m["per_class"]["10"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["per_class"]["40"]["recall"] == pytest.approx(0.5)
    assert set(m["per_class"]) == {str(c) for c in CODES}
    assert m["per_class"]["2583"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_unknown_true_codes_are_scored_not_dropped() -> None:
    m = classification_metrics([10, 9999], [10, 10], codes=CODES)
    assert m["per_class"]["9999"]["support"] == 1
    assert m["accuracy"] == pytest.approx(0.5)


def test_empty_and_mismatched_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        classification_metrics([], [], codes=CODES)
    with pytest.raises(ValueError, match="2 labels but 1"):
        classification_metrics([10, 40], [10], codes=CODES)
