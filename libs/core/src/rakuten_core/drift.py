"""The drift features of a product, and their reference distributions stored in the bundle.

Serving records each prediction's features (:func:`input_features` of the cleaned text and the
decoded image where it prepares the input, then :func:`with_answer` for the answer); evaluation
computes the same two steps (:func:`product_features`) on every test row and stores the
distributions (:func:`build_reference`) in ``bundle.json``'s ``reference``; the monitor compares
a recent window of records with them (:mod:`rakuten_core.drift_stats`). One function on both
sides means a feature cannot drift because two copies computed it differently.

Monitored features (the ``feature`` label of ``rakuten_drift_score``):

- ``predicted_class`` (categorical): the predicted ``prdtypecode``, i.e. the model's class mix;
- ``confidence`` (numeric): the probability of the predicted class;
- ``text_length`` (numeric): characters of the cleaned text (designation + description);
- ``no_description`` (categorical): ``true`` when the description is missing or blank after
  cleaning;
- ``no_image`` (categorical): ``true`` when the product came without an image;
- ``image_brightness`` (numeric): mean pixel value (0-255) of the decoded, resized RGB image;
  products with an image only.

Reference format (``bundle.json`` ``reference``; :class:`DriftReference`, versioned by
``version``): per feature, categorical ``labels`` with their ``counts`` or numeric inner bin
``edges`` (deciles of the reference values; bin ``i`` holds ``edges[i-1] < x <= edges[i]``)
with ``len(edges) + 1`` ``counts``. Counts, not fractions, so that the comparison knows how
much the reference itself can be trusted (see :mod:`rakuten_core.drift_stats`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rakuten_core.errors import BundleError
from rakuten_core.image import ImageArray
from rakuten_core.text import clean_text

DRIFT_REFERENCE_VERSION = 1
NUMERIC_QUANTILES = tuple(q / 10 for q in range(1, 10))  # decile edges -> 10 bins
BINARY_LABELS = ("false", "true")


class FeatureKind(StrEnum):
    CATEGORICAL = "categorical"
    NUMERIC = "numeric"


@dataclass(frozen=True)
class FeatureSpec:
    """One monitored feature and the drift score above which it alerts.

    Thresholds are on the noise-corrected divergence of :mod:`rakuten_core.drift_stats`, which
    reads like a PSI for real shifts: 0.1 is the usual "moderate shift" line for inputs; the
    model's outputs get 0.2 because the class mix also moves with legitimate changes in what
    sellers list, and an input shift is the earlier, cleaner signal anyway.
    """

    name: str
    kind: FeatureKind
    threshold: float
    description: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("predicted_class", FeatureKind.CATEGORICAL, 0.2, "predicted prdtypecode"),
    FeatureSpec("confidence", FeatureKind.NUMERIC, 0.2, "probability of the predicted class"),
    FeatureSpec("text_length", FeatureKind.NUMERIC, 0.1, "characters of the cleaned text"),
    FeatureSpec("no_description", FeatureKind.CATEGORICAL, 0.1, "description missing"),
    FeatureSpec("no_image", FeatureKind.CATEGORICAL, 0.1, "image missing"),
    FeatureSpec("image_brightness", FeatureKind.NUMERIC, 0.1, "mean pixel value 0-255"),
)
FEATURES_BY_NAME: Mapping[str, FeatureSpec] = {f.name: f for f in FEATURES}


@dataclass(frozen=True)
class InputFeatures:
    """The drift features of a product's input, known before the model answers.

    Serving computes them where it prepares the input (its decode threads), so the event loop
    that answers requests does not; :func:`product_features` adds the answer.
    """

    text_length: int
    has_description: bool
    has_image: bool
    image_brightness: float | None


@dataclass(frozen=True)
class ProductFeatures:
    """The drift features of one prediction; ``None`` where a record predates a feature."""

    prdtypecode: int
    probability: float
    text_length: int | None
    has_description: bool | None
    has_image: bool | None
    image_brightness: float | None


def image_brightness(image: ImageArray) -> float:
    """Mean pixel value (0-255) of a decoded RGB image, rounded to 0.01."""
    return round(float(np.asarray(image, dtype=np.float64).mean()), 2)


def input_features(
    *, text: str, description: str | None, image: ImageArray | None
) -> InputFeatures:
    """Features of one product's input.

    Args:
        text: the model's text input, :func:`rakuten_core.text.product_text` output.
        description: the description as received (cleaned here; blank counts as missing).
        image: the decoded image the model saw, ``None`` when there was none.
    """
    return InputFeatures(
        text_length=len(text),
        has_description=bool(clean_text(description)),
        has_image=image is not None,
        image_brightness=image_brightness(image) if image is not None else None,
    )


def with_answer(inputs: InputFeatures, *, prdtypecode: int, probability: float) -> ProductFeatures:
    """The features of one prediction: its input's and the answer (code and probability)."""
    return ProductFeatures(
        prdtypecode=int(prdtypecode),
        probability=float(probability),
        text_length=inputs.text_length,
        has_description=inputs.has_description,
        has_image=inputs.has_image,
        image_brightness=inputs.image_brightness,
    )


def product_features(
    *,
    text: str,
    description: str | None,
    image: ImageArray | None,
    prdtypecode: int,
    probability: float,
) -> ProductFeatures:
    """Features of one product from what serving and evaluation both hold.

    :func:`input_features` of the input (arguments as there), then :func:`with_answer`.
    """
    inputs = input_features(text=text, description=description, image=image)
    return with_answer(inputs, prdtypecode=prdtypecode, probability=probability)


def _flag(value: bool) -> str:
    return BINARY_LABELS[int(value)]


def feature_values(rows: Iterable[ProductFeatures]) -> dict[str, list[Any]]:
    """Per feature, the values of ``rows`` (unknown values left out).

    Categorical values are strings (``"2583"``, ``"true"``), numeric ones floats.
    """
    values: dict[str, list[Any]] = {f.name: [] for f in FEATURES}
    for row in rows:
        values["predicted_class"].append(str(row.prdtypecode))
        values["confidence"].append(float(row.probability))
        if row.text_length is not None:
            values["text_length"].append(float(row.text_length))
        if row.has_description is not None:
            values["no_description"].append(_flag(not row.has_description))
        if row.has_image is not None:
            values["no_image"].append(_flag(not row.has_image))
        if row.has_image and row.image_brightness is not None:
            values["image_brightness"].append(float(row.image_brightness))
    return values


class FeatureReference(BaseModel):
    """One feature's reference distribution (see the module docstring for the layout)."""

    model_config = ConfigDict(extra="forbid")

    kind: FeatureKind
    labels: list[str] = Field(default_factory=list, description="Categorical values.")
    edges: list[float] = Field(default_factory=list, description="Numeric inner bin edges.")
    counts: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> FeatureReference:
        expected = len(self.labels) if self.kind == FeatureKind.CATEGORICAL else len(self.edges) + 1
        if len(self.counts) != expected:
            raise ValueError(f"{len(self.counts)} counts for {expected} bins")
        if any(c < 0 for c in self.counts) or self.edges != sorted(set(self.edges)):
            raise ValueError("counts must be >= 0 and edges strictly increasing")
        return self

    @property
    def total(self) -> int:
        return sum(self.counts)

    def bin_labels(self) -> list[str]:
        """Human-readable bin names, for reports."""
        if self.kind == FeatureKind.CATEGORICAL:
            return list(self.labels)
        bounds = ["-inf", *(f"{e:g}" for e in self.edges), "+inf"]
        return [f"({lo}, {hi}]" for lo, hi in zip(bounds, bounds[1:], strict=False)]

    def bin_counts(self, values: Sequence[Any]) -> tuple[list[int], int]:
        """Counts of ``values`` in this reference's bins, plus those that fall in none."""
        if self.kind == FeatureKind.CATEGORICAL:
            position = {label: i for i, label in enumerate(self.labels)}
            counts = [0] * len(self.labels)
            other = 0
            for value in values:
                i = position.get(str(value))
                if i is None:
                    other += 1
                else:
                    counts[i] += 1
            return counts, other
        array = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), array, side="left")
        binned = np.bincount(index, minlength=len(self.edges) + 1)
        return [int(c) for c in binned], 0


class DriftReference(BaseModel):
    """What the monitor compares recent predictions with; ``bundle.json``'s ``reference``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1  # DRIFT_REFERENCE_VERSION
    n: int = Field(ge=0, description="Rows the reference was computed on (the test split).")
    features: dict[str, FeatureReference]


def _numeric_reference(values: Sequence[float]) -> FeatureReference:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return FeatureReference(kind=FeatureKind.NUMERIC, edges=[], counts=[0])
    edges = sorted({round(float(q), 6) for q in np.quantile(array, NUMERIC_QUANTILES)})
    ref = FeatureReference(kind=FeatureKind.NUMERIC, edges=edges, counts=[0] * (len(edges) + 1))
    counts, _ = ref.bin_counts(values)
    return ref.model_copy(update={"counts": counts})


def build_reference(rows: Sequence[ProductFeatures], *, codes: Sequence[int]) -> DriftReference:
    """Reference distributions of ``rows`` (evaluation: every test row, fused predictions).

    ``codes`` are the model's categories, so that a class never predicted on the test split
    still has its (empty) bin.
    """
    values = feature_values(rows)
    features: dict[str, FeatureReference] = {}
    for spec in FEATURES:
        if spec.kind == FeatureKind.NUMERIC:
            features[spec.name] = _numeric_reference(values[spec.name])
            continue
        labels = [str(c) for c in codes] if spec.name == "predicted_class" else list(BINARY_LABELS)
        ref = FeatureReference(kind=spec.kind, labels=labels, counts=[0] * len(labels))
        counts, _ = ref.bin_counts(values[spec.name])
        features[spec.name] = ref.model_copy(update={"counts": counts})
    return DriftReference(n=len(rows), features=features)


def require_reference(reference: DriftReference | None) -> DriftReference:
    """A bundle's drift reference (``BundleMetadata.reference``), which only the monitor needs.

    Raises:
        BundleError: the bundle has none in this format (``{}``, or a bundle trained before the
            drift module: retrain to get one).
    """
    if reference is None:
        raise BundleError(
            f"the bundle has no drift reference of version {DRIFT_REFERENCE_VERSION}: it predates "
            "the drift module; train a new bundle (rakuten-train train) to get one"
        )
    return reference
