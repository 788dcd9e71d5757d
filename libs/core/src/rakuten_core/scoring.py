"""Classification scores: the one definition used by evaluation, batch scoring and live quality.

Training's test evaluation, ``rakuten-predict --labels`` and the monitor's live weighted F1 all
call :func:`classification_metrics`, so a figure means the same thing wherever it is reported.

Definitions (scikit-learn's, on ``prdtypecode`` values, never on class indices; computed here
with NumPy so that serving and batch prediction do not install scikit-learn and SciPy, and
checked against scikit-learn by the tests):

- ``weighted_f1`` (the challenge metric): per-class F1 weighted by true support, i.e.
  ``sklearn.metrics.f1_score(average="weighted")``;
- ``macro_f1``: the mean F1 over the classes **present in the truth** (a class the model
  predicts but the labels lack would otherwise count as a zero and punish a test split for
  what it happens not to contain);
- ``accuracy`` and ``n`` (rows scored);
- ``per_class``: precision, recall, F1 and support for every category, in the categories'
  order, with ``zero_division=0``.

Rules for the edge cases the previous two copies disagreed on:

- **Unknown codes**: a code the categories lack, in the truth or in the predictions, is scored
  like any other (rows with an unknown true code are necessarily errors) and listed after the
  categories with ``name`` ``None``; nothing is dropped silently.
- **Empty input**: refused with :class:`~rakuten_core.errors.InvalidInputError`. A score over
  zero rows is not 0, it is undefined; callers gate on a minimum count (the monitor) or treat
  an empty split as a data error (evaluation, batch scoring).
- Predictions and labels of different lengths raise :class:`ValueError` (a programming error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rakuten_core.categories import CategoryIndex
from rakuten_core.errors import InvalidInputError

DECIMALS = 6
PRIMARY_MODALITY = "fused"


def _codes(values: ArrayLike) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _positions(
    codes: np.ndarray[Any, np.dtype[np.int64]], labels: Sequence[int]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each code's position in ``labels``, -1 for a code ``labels`` lack."""
    table = np.asarray(labels, dtype=np.int64)
    if table.size == 0:
        return np.full(codes.shape, -1, dtype=np.int64)
    order = np.argsort(table, kind="stable")
    ordered = table[order]
    at = np.minimum(np.searchsorted(ordered, codes), table.size - 1)
    return np.where(ordered[at] == codes, order[at], -1)


def _confusion_counts(
    truth: np.ndarray[Any, np.dtype[np.int64]],
    pred: np.ndarray[Any, np.dtype[np.int64]],
    labels: Sequence[int],
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``(k, k)`` counts, rows = true label, columns = predicted label, in ``labels``' order;
    rows whose true or predicted code ``labels`` lack are left out (scikit-learn's rule)."""
    k = len(labels)
    true_at, pred_at = _positions(truth, labels), _positions(pred, labels)
    kept = (true_at >= 0) & (pred_at >= 0)
    cells = np.bincount(true_at[kept] * k + pred_at[kept], minlength=k * k)
    return cells.astype(np.int64, copy=False).reshape(k, k)


def _ratio(
    numerator: np.ndarray[Any, np.dtype[Any]], denominator: np.ndarray[Any, np.dtype[Any]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``numerator / denominator``, 0 where the denominator is 0 (``zero_division=0``)."""
    safe = np.where(denominator == 0, 1, denominator).astype(np.float64)
    return np.where(denominator == 0, 0.0, numerator / safe)


def classification_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, categories: CategoryIndex
) -> dict[str, Any]:
    """Weighted/macro F1, accuracy and per-class scores of predicted vs true codes.

    Args:
        y_true: true ``prdtypecode`` values.
        y_pred: predicted ``prdtypecode`` values, same length.
        categories: the model's categories (their order is the ``per_class`` order).

    Raises:
        InvalidInputError: no rows to score.
        ValueError: ``y_true`` and ``y_pred`` differ in length.
    """
    truth = _codes(y_true)
    pred = _codes(y_pred)
    if truth.shape != pred.shape:
        raise ValueError(f"{truth.size} labels but {pred.size} predictions")
    if truth.size == 0:
        raise InvalidInputError("no labelled rows to score")
    known = [c.code for c in categories.categories]
    seen = {int(c) for c in np.unique(np.concatenate([truth, pred]))}
    unknown = sorted(seen - set(known))
    labels = known + unknown
    matrix = _confusion_counts(truth, pred, labels)  # labels hold every code: no row left out
    hits = np.diagonal(matrix)
    support = matrix.sum(axis=1)  # true rows per label
    predicted = matrix.sum(axis=0)
    # precision_recall_fscore_support(zero_division=0): F1 = 2 tp / (2 tp + fn + fp)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * hits, support + predicted)
    present = support > 0
    names: list[str | None] = [c.name_en for c in categories.categories]
    names += [None] * len(unknown)
    return {
        "weighted_f1": round(float((f1 * support).sum() / support.sum()), DECIMALS),
        "macro_f1": round(float(f1[present].mean()), DECIMALS),
        "accuracy": round(float((truth == pred).mean()), DECIMALS),
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


def modality_metrics(
    y_true: ArrayLike,
    predictions: Mapping[str, ArrayLike],
    categories: CategoryIndex,
    *,
    split: str = "test",
) -> dict[str, Any]:
    """Scores of one model fed several ways (fused, text only, image only) on the same rows.

    The summary keys (``weighted_f1``, ``macro_f1``, ``accuracy``, ``n``) are the ``fused``
    modality's, so the headline figure is the model as served; ``<modality>_weighted_f1``
    gives each other modality's headline, and ``modalities`` every modality's full scores.

    Raises:
        InvalidInputError: no rows, or no ``fused`` predictions.
    """
    if PRIMARY_MODALITY not in predictions:
        raise InvalidInputError(f"no {PRIMARY_MODALITY!r} predictions among {sorted(predictions)}")
    per_modality = {
        name: classification_metrics(y_true, pred, categories) for name, pred in predictions.items()
    }
    fused = per_modality[PRIMARY_MODALITY]
    out: dict[str, Any] = {
        "split": split,
        "weighted_f1": fused["weighted_f1"],
        "macro_f1": fused["macro_f1"],
        "accuracy": fused["accuracy"],
        "n": fused["n"],
    }
    for name, scores in per_modality.items():
        if name != PRIMARY_MODALITY:
            out[f"{name}_weighted_f1"] = scores["weighted_f1"]
    out["modalities"] = per_modality
    return out


def confusion(
    y_true: ArrayLike, y_pred: ArrayLike, categories: CategoryIndex
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Confusion counts, rows = true code, columns = predicted code, in the categories' order.

    Rows with a code the categories lack are left out (they have no row or column to go in);
    :func:`classification_metrics` still counts them.
    """
    codes = [c.code for c in categories.categories]
    return _confusion_counts(_codes(y_true), _codes(y_pred), codes)


def codes_of(indices: Sequence[int] | ArrayLike, categories: CategoryIndex) -> list[int]:
    """``prdtypecode`` values of class indices (a model's ``argmax``) in ``categories``."""
    return [categories.code_of(int(i)) for i in _codes(indices)]
