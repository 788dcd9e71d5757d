"""Evaluation on the held-out test split: metrics per modality and drift reference distributions.

The same functions serve ``rakuten-train train`` (right after fitting) and
``rakuten-train evaluate`` (on a saved bundle), so both report identical figures for a bundle.
Macro F1 is averaged over the classes present in the test split (a class the model predicts
but the split lacks would otherwise count as a zero); weighted F1 (the challenge metric) weighs
each class by its test support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from rakuten_core.categories import CategoryIndex
from rakuten_train.pipeline import MODALITIES, Modality, Split, make_dataset

TEXT_LENGTH_EDGES = [0, 25, 50, 100, 200, 400, 800, 1600, 3200, 1e9]
BRIGHTNESS_EDGES = [float(x) for x in np.linspace(0, 256, 17)]
CONFIDENCE_EDGES = [float(x) for x in np.linspace(0, 1, 11)]


@dataclass(frozen=True)
class Evaluation:
    """Predictions and metrics of one model on one split, for every modality."""

    metrics: dict[str, Any]
    y_true: NDArray[np.int64]
    probs: dict[str, NDArray[np.float32]]  # modality -> (N, C)
    reference: dict[str, Any]


def predict_split(
    model: Any, split: Split, *, image_size: int, batch_size: int, modality: Modality
) -> NDArray[np.float32]:
    """Class probabilities for ``split`` through the training input pipeline."""
    ds = make_dataset(
        split,
        image_size=image_size,
        batch_size=batch_size,
        modality=modality,
        with_labels=False,
    )
    chunks = [np.asarray(model.predict_on_batch(batch), dtype=np.float32) for batch in ds]
    if not chunks:
        return np.zeros((0, int(model.outputs[0].shape[-1])), dtype=np.float32)
    return np.concatenate(chunks)


def scores(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], categories: CategoryIndex
) -> dict[str, Any]:
    """Weighted/macro F1, accuracy and per-class precision/recall/F1/support."""
    present = sorted({int(y) for y in y_true})
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(categories))), zero_division=0
    )
    total = int(support.sum())
    weighted = float((f1 * support).sum() / total) if total else 0.0
    per_class = [
        {
            "code": categories.code_of(i),
            "name": categories.categories[i].name_en,
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "f1": round(float(f1[i]), 6),
            "support": int(support[i]),
        }
        for i in range(len(categories))
    ]
    return {
        "weighted_f1": round(weighted, 6),
        "macro_f1": round(float(np.mean(f1[present])) if present else 0.0, 6),
        "accuracy": round(float(accuracy_score(y_true, y_pred)) if total else 0.0, 6),
        "n": total,
        "per_class": per_class,
    }


def evaluate_model(
    model: Any,
    split: Split,
    categories: CategoryIndex,
    *,
    image_size: int,
    batch_size: int = 128,
) -> Evaluation:
    """Metrics for fused, text-only and image-only inputs, and reference distributions."""
    probs: dict[str, NDArray[np.float32]] = {
        m: predict_split(model, split, image_size=image_size, batch_size=batch_size, modality=m)
        for m in MODALITIES
    }
    per_modality = {m: scores(split.labels, p.argmax(axis=1), categories) for m, p in probs.items()}
    fused = per_modality["fused"]
    metrics: dict[str, Any] = {
        "split": "test",
        "weighted_f1": fused["weighted_f1"],
        "macro_f1": fused["macro_f1"],
        "accuracy": fused["accuracy"],
        "n": fused["n"],
        "text_only_weighted_f1": per_modality["text_only"]["weighted_f1"],
        "image_only_weighted_f1": per_modality["image_only"]["weighted_f1"],
        "modalities": per_modality,
    }
    reference = reference_distributions(split, probs["fused"], categories, image_size=image_size)
    return Evaluation(metrics=metrics, y_true=split.labels, probs=probs, reference=reference)


def confusion(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], n_classes: int
) -> NDArray[np.int64]:
    return np.asarray(confusion_matrix(y_true, y_pred, labels=list(range(n_classes))))


def reference_distributions(
    split: Split, probs: NDArray[np.float32], categories: CategoryIndex, *, image_size: int
) -> dict[str, Any]:
    """What serving compares live traffic against to detect drift (all on the test split)."""
    from rakuten_train.pipeline import decode_or_blank  # noqa: PLC0415

    n = max(len(split), 1)
    predicted = np.bincount(probs.argmax(axis=1), minlength=len(categories))
    lengths = np.asarray([len(t) for t in split.texts], dtype=np.float64)
    brightness = []
    for path in split.image_paths:
        image, has = decode_or_blank(str(path), image_size)
        if has:
            brightness.append(float(image.mean()))
    confidence = probs.max(axis=1) if len(split) else np.zeros(0)

    def hist(values: Any, edges: list[float]) -> dict[str, Any]:
        counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges)
        total = max(int(counts.sum()), 1)
        return {"edges": edges, "fractions": [round(int(c) / total, 6) for c in counts]}

    return {
        "n": len(split),
        "prediction_prior": {
            str(categories.code_of(i)): round(int(c) / n, 6) for i, c in enumerate(predicted)
        },
        "text_length_chars": hist(lengths, TEXT_LENGTH_EDGES),
        "empty_text_rate": round(float((lengths == 0).sum()) / n, 6),
        "image_brightness": hist(brightness, BRIGHTNESS_EDGES),
        "missing_image_rate": round(1 - len(brightness) / n, 6),
        "confidence": hist(confidence, CONFIDENCE_EDGES),
    }
