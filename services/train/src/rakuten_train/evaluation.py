"""Evaluation on the held-out test split: metrics per modality and drift reference distributions.

The same functions serve ``rakuten-train train`` (right after fitting) and
``rakuten-train evaluate`` (on a saved bundle), so both report identical figures for a bundle.
The scores are :mod:`rakuten_core.scoring`'s (the definitions batch prediction and the monitor
use too) and the reference distributions :mod:`rakuten_core.drift`'s (the features serving
records for each prediction, computed by the same function).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rakuten_core.bundle_fields import HeldOutMetrics
from rakuten_core.categories import CategoryIndex
from rakuten_core.drift import DriftReference, ProductFeatures, build_reference, product_features
from rakuten_core.errors import DataValidationError
from rakuten_core.scoring import classification_metrics, codes_of, modality_metrics
from rakuten_train.pipeline import MODALITIES, Modality, Split, decode_or_blank, make_dataset


@dataclass(frozen=True)
class Evaluation:
    """Predictions and metrics of one model on one split, for every modality."""

    metrics: HeldOutMetrics
    y_true: NDArray[np.int64]
    probs: dict[str, NDArray[np.float32]]  # modality -> (N, C)
    reference: DriftReference


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
    """:func:`rakuten_core.scoring.classification_metrics` of class indices (model outputs)."""
    return classification_metrics(
        codes_of(y_true, categories), codes_of(y_pred, categories), categories
    )


def evaluate_model(
    model: Any,
    split: Split,
    categories: CategoryIndex,
    *,
    image_size: int,
    batch_size: int = 128,
) -> Evaluation:
    """Metrics for fused, text-only and image-only inputs, and reference distributions.

    Raises:
        DataValidationError: the split is empty (a score over no rows is undefined).
    """
    if len(split) == 0:
        raise DataValidationError("the test split is empty: nothing to evaluate the model on")
    probs: dict[str, NDArray[np.float32]] = {
        m: predict_split(model, split, image_size=image_size, batch_size=batch_size, modality=m)
        for m in MODALITIES
    }
    metrics = modality_metrics(
        codes_of(split.labels, categories),
        {m: codes_of(p.argmax(axis=1), categories) for m, p in probs.items()},
        categories,
        split="test",
    )
    reference = reference_distributions(split, probs["fused"], categories, image_size=image_size)
    return Evaluation(
        metrics=HeldOutMetrics.model_validate(metrics),  # bundle.json's, checked where made
        y_true=split.labels,
        probs=probs,
        reference=reference,
    )


def reference_distributions(
    split: Split, probs: NDArray[np.float32], categories: CategoryIndex, *, image_size: int
) -> DriftReference:
    """What the monitor compares live traffic with.

    Computed on the test split with the fused predictions, through the same
    :func:`rakuten_core.drift.product_features` serving applies to each request: the images
    are decoded at the model's size by the function serving uses, the texts are the cleaned
    model inputs. A split without its descriptions leaves ``no_description`` empty.
    """
    predicted = probs.argmax(axis=1) if len(split) else np.zeros(0, dtype=np.int64)
    rows: list[ProductFeatures] = []
    for i in range(len(split)):
        image, has = decode_or_blank(str(split.image_paths[i]), image_size)
        features = product_features(
            text=str(split.texts[i]),
            description=None if split.descriptions is None else str(split.descriptions[i]),
            image=image if has else None,
            prdtypecode=categories.code_of(int(predicted[i])),
            probability=float(probs[i].max()),
        )
        if split.descriptions is None:
            features = dataclasses.replace(features, has_description=None)
        rows.append(features)
    codes = [c.code for c in categories.categories]
    return build_reference(rows, codes=codes)
