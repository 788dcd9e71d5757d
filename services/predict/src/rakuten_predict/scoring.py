"""Scores of a labelled prediction run, defined exactly as the training evaluation defines them.

Both services compute them with scikit-learn on ``prdtypecode`` values: ``accuracy_score``,
``f1_score(average="weighted")`` (the challenge metric), ``f1_score(average="macro")`` and
``precision_recall_fscore_support`` per class, all with ``zero_division=0`` and sklearn's default
label set for the averages (the codes present in the truth or the predictions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from rakuten_core.errors import InvalidInputError


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], *, codes: Sequence[int]
) -> dict[str, Any]:
    """Weighted/macro F1, accuracy and per-class precision/recall/F1/support.

    Args:
        y_true: true ``prdtypecode`` of each row.
        y_pred: predicted ``prdtypecode`` of each row.
        codes: the model's category codes; per-class scores are reported for each of them plus
            any code that appears only in ``y_true``.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if truth.shape != pred.shape:
        raise ValueError(f"{truth.size} labels but {pred.size} predictions")
    if truth.size == 0:
        raise InvalidInputError("no labelled rows to score")
    per_class_codes = sorted({int(c) for c in codes} | {int(c) for c in np.unique(truth)})
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=per_class_codes, zero_division=0
    )
    return {
        "n": int(truth.size),
        "accuracy": float(accuracy_score(truth, pred)),
        "f1_weighted": float(f1_score(truth, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(truth, pred, average="macro", zero_division=0)),
        "per_class": {
            str(code): {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for code, p, r, f, s in zip(
                per_class_codes, precision, recall, f1, support, strict=True
            )
        },
    }
