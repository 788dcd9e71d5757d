"""Evaluation on the held-out test split: metrics per modality and drift reference distributions.

What is evaluated is what serves: the bundle's ONNX export (``OnnxRuntime`` of
:mod:`rakuten_core.bundle`, checked against the Keras model before the bundle is written), fed
the inputs serving builds (:func:`rakuten_core.inputs.model_inputs`, images decoded by serving's
function). The same functions serve ``rakuten-train train`` (right after fitting, on the export
it is about to save), ``rakuten-train evaluate`` (on a saved bundle) and the gate (champion and
challenger), so all report identical figures for a bundle, and none of them imports TensorFlow
to do it. The scores are :mod:`rakuten_core.scoring`'s (the definitions batch prediction and
the monitor use too) and the reference distributions :mod:`rakuten_core.drift`'s (the features
serving records for each prediction, computed by the same function).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rakuten_core.bundle import ProbabilityModel, load_bundle
from rakuten_core.bundle_fields import HeldOutMetrics
from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.drift import DriftReference, ProductFeatures, build_reference, product_features
from rakuten_core.errors import DataValidationError
from rakuten_core.image import ImageArray
from rakuten_core.inputs import model_inputs
from rakuten_core.scoring import classification_metrics, codes_of, modality_metrics
from rakuten_train.splits import MODALITIES, Modality, Split, decode_split, load_split


@dataclass(frozen=True)
class Evaluation:
    """Predictions and metrics of one model on one split, for every modality."""

    metrics: HeldOutMetrics
    y_true: NDArray[np.int64]
    probs: dict[str, NDArray[np.float32]]  # modality -> (N, C)
    reference: DriftReference


def predict_split(
    model: ProbabilityModel,
    split: Split,
    *,
    image_size: int,
    classes: int,
    modality: Modality = "fused",
    images: list[ImageArray | None] | None = None,
    batch_size: int = 128,
) -> NDArray[np.float32]:
    """Class probabilities ``(N, classes)`` for ``split``, in batches of ``batch_size``.

    ``modality`` blanks one input for the ablation evaluations: ``text_only`` feeds no image
    (the blank image, ``has_image = 0``), ``image_only`` feeds ``""`` as text. ``images``: the
    split's images already decoded (:func:`rakuten_train.splits.decode_split`), else decoded here.
    """
    n = len(split)
    if modality == "text_only":
        images = [None] * n
    elif images is None:
        images = decode_split(split, image_size)
    texts = [""] * n if modality == "image_only" else [str(t) for t in split.texts]
    chunks = [
        model.predict_proba(
            model_inputs(
                texts[start : start + batch_size],
                images[start : start + batch_size],
                image_size=image_size,
            )
        )
        for start in range(0, n, batch_size)
    ]
    if not chunks:
        return np.zeros((0, classes), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def scores(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], categories: CategoryIndex
) -> dict[str, Any]:
    """:func:`rakuten_core.scoring.classification_metrics` of class indices (model outputs)."""
    return classification_metrics(
        codes_of(y_true, categories), codes_of(y_pred, categories), categories
    )


def evaluate_model(
    model: ProbabilityModel,
    split: Split,
    categories: CategoryIndex,
    *,
    image_size: int,
    batch_size: int = 128,
) -> Evaluation:
    """Metrics for fused, text-only and image-only inputs, and reference distributions.

    The split's images are decoded once, for every modality and the references.

    Raises:
        DataValidationError: the split is empty (a score over no rows is undefined).
    """
    if len(split) == 0:
        raise DataValidationError("the test split is empty: nothing to evaluate the model on")
    images = decode_split(split, image_size)
    probs: dict[str, NDArray[np.float32]] = {
        m: predict_split(
            model,
            split,
            image_size=image_size,
            classes=len(categories),
            modality=m,
            images=images,
            batch_size=batch_size,
        )
        for m in MODALITIES
    }
    metrics = modality_metrics(
        codes_of(split.labels, categories),
        {m: codes_of(p.argmax(axis=1), categories) for m, p in probs.items()},
        categories,
        split="test",
    )
    reference = reference_distributions(split, probs["fused"], categories, images)
    return Evaluation(
        metrics=HeldOutMetrics.model_validate(metrics),  # bundle.json's, checked where made
        y_true=split.labels,
        probs=probs,
        reference=reference,
    )


def reference_distributions(
    split: Split,
    probs: NDArray[np.float32],
    categories: CategoryIndex,
    images: list[ImageArray | None],
) -> DriftReference:
    """What the monitor compares live traffic with.

    Computed on the test split with the fused predictions, through the same
    :func:`rakuten_core.drift.product_features` serving applies to each request: ``images`` are
    the split's, decoded at the model's size by the function serving uses (``None``: missing),
    the texts are the cleaned model inputs. A split without its descriptions leaves
    ``no_description`` empty.
    """
    predicted = probs.argmax(axis=1) if len(split) else np.zeros(0, dtype=np.int64)
    rows: list[ProductFeatures] = []
    for i in range(len(split)):
        features = product_features(
            text=str(split.texts[i]),
            description=None if split.descriptions is None else str(split.descriptions[i]),
            image=images[i],
            prdtypecode=categories.code_of(int(predicted[i])),
            probability=float(probs[i].max()),
        )
        if split.descriptions is None:
            features = dataclasses.replace(features, has_description=None)
        rows.append(features)
    codes = [c.code for c in categories.categories]
    return build_reference(rows, codes=codes)


def bundle_f1(bundle_dir: Path, test: Split) -> float:
    """Weighted F1 of a saved bundle (its ONNX export) on ``test``, with its own categories:
    the gate's score of the champion and of the challenger."""
    bundle = load_bundle(bundle_dir)
    relabelled = Split(
        texts=test.texts,
        image_paths=test.image_paths,
        labels=_relabel(test.labels, bundle.categories),
    )
    probs = predict_split(
        bundle.runtime, relabelled, image_size=bundle.image_size, classes=len(bundle.categories)
    )
    return float(scores(relabelled.labels, probs.argmax(axis=1), bundle.categories)["weighted_f1"])


def _relabel(labels: Any, target: CategoryIndex) -> Any:
    canonical = CategoryIndex(CATEGORIES)
    return np.asarray([target.index_of(canonical.code_of(int(i))) for i in labels], dtype=np.int64)


def evaluate_bundle(bundle: Path, data: Path, raw: Path) -> tuple[Evaluation, CategoryIndex]:
    """A saved bundle's ONNX export on the test split: the evaluation, and the bundle's
    categories (the order of its reports)."""
    loaded = load_bundle(bundle)
    test = load_split(data, "test", raw, loaded.categories)
    evaluation = evaluate_model(
        loaded.runtime, test, loaded.categories, image_size=loaded.image_size
    )
    return evaluation, loaded.categories
