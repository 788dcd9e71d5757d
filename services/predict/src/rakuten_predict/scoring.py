"""Scores of a labelled prediction run, defined exactly as the training evaluation defines them.

Same keys, same definitions, same rounding as ``rakuten_train.evaluation.scores`` (services do
not import each other; ``tests/unit/predict/test_scoring.py`` checks both agree):

- ``weighted_f1`` (the challenge metric): per-class F1 weighted by true support, i.e.
  ``sklearn.metrics.f1_score(average="weighted")``;
- ``macro_f1``: the mean F1 over the classes **present in the truth** (a class the model predicts
  but the labels lack would otherwise count as a zero);
- ``accuracy``, ``n``, and ``per_class`` (code, name, precision, recall, f1, support) for every
  category of the bundle, from ``precision_recall_fscore_support(zero_division=0)``.

Labels are ``prdtypecode`` values; a true code the bundle does not know is scored too (its rows
are necessarily errors) and listed after the bundle's categories with ``name`` ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from rakuten_core.categories import CategoryIndex
from rakuten_core.errors import InvalidInputError

DECIMALS = 6


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], categories: CategoryIndex
) -> dict[str, Any]:
    """Weighted/macro F1, accuracy and per-class scores of predicted vs true codes."""
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if truth.shape != pred.shape:
        raise ValueError(f"{truth.size} labels but {pred.size} predictions")
    if truth.size == 0:
        raise InvalidInputError("no labelled rows to score")
    known = [c.code for c in categories.categories]
    unknown = sorted({int(c) for c in np.unique(truth)} - set(known))
    labels = known + unknown
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=labels, zero_division=0
    )
    present = support > 0
    names = [c.name_en for c in categories.categories] + [None] * len(unknown)
    return {
        "weighted_f1": round(float((f1 * support).sum() / support.sum()), DECIMALS),
        "macro_f1": round(float(f1[present].mean()), DECIMALS),
        "accuracy": round(float(accuracy_score(truth, pred)), DECIMALS),
        "n": int(truth.size),
        "per_class": [
            {
                "code": code,
                "name": name,
                "precision": round(float(p), DECIMALS),
                "recall": round(float(r), DECIMALS),
                "f1": round(float(f), DECIMALS),
                "support": int(s),
            }
            for code, name, p, r, f, s in zip(
                labels, names, precision, recall, f1, support, strict=True
            )
        ],
    }
