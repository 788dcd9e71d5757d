"""The typed sections of ``bundle.json``: text settings, held-out metrics, the drift reference.

The layout is the one training has written since the first bundles (``rakuten_train.training``
fills it, :func:`rakuten_core.scoring.modality_metrics` computes the metrics): these models give
it types without changing it, so every bundle on disk or in the registry still reads, and one
written now is the same JSON as when these sections were plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WrapSerializer,
)

from rakuten_core.drift import DRIFT_REFERENCE_VERSION, DriftReference

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class TextSettings(BaseModel):
    """``text``: how the model reads text, for people (serving reads ``serving/text.json``)."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="What builds the model's text input from a product.")
    normalizer: str = Field(description="The normalisation inside the model.")
    sequence_length: int = Field(gt=0, description="Tokens the sequence branch reads.")
    word_ngrams: int = Field(ge=1, description="Longest word n-gram of the wide branch.")
    char_ngrams: tuple[int, int] = Field(description="Shortest and longest character n-gram.")


class ClassScores(BaseModel):
    """One category's scores on the test split (``zero_division=0``)."""

    model_config = ConfigDict(extra="forbid")

    code: int
    name: str | None = Field(description="English name; null for a code the categories lack.")
    precision: Score
    recall: Score
    f1: Score
    support: int = Field(ge=0, description="Test rows of this code.")


class ModalityScores(BaseModel):
    """One way of feeding the model (fused, text only, image only): its scores on the split."""

    model_config = ConfigDict(extra="forbid")

    weighted_f1: Score = Field(description="F1 per class weighted by support (the challenge's).")
    macro_f1: Score = Field(description="Mean F1 over the classes present in the truth.")
    accuracy: Score
    n: int = Field(gt=0, description="Rows scored.")
    per_class: list[ClassScores] = Field(description="In the categories' order.")


class HeldOutMetrics(BaseModel):
    """``metrics``: the model's scores on the held-out test split, the headline being fused.

    :func:`rakuten_core.scoring.modality_metrics` of training's three modalities.
    """

    model_config = ConfigDict(extra="forbid")

    split: str = Field(description="The split scored (training: test).")
    weighted_f1: Score = Field(description="Fused inputs: the model as served.")
    macro_f1: Score
    accuracy: Score
    n: int = Field(gt=0)
    text_only_weighted_f1: Score = Field(description="The image left out.")
    image_only_weighted_f1: Score = Field(description="The text left out.")
    modalities: dict[str, ModalityScores] = Field(description="Full scores per modality.")


def _versioned_or_none(value: Any) -> Any:
    """A reference in another format reads as none: ``{}`` (no reference) or the layout written
    before the drift module. Serving and batch prediction never read it, so such a bundle still
    loads; the monitor refuses it with the reason (:func:`rakuten_core.drift.require_reference`).
    """
    if isinstance(value, Mapping) and value.get("version") != DRIFT_REFERENCE_VERSION:
        return None
    return value


def _none_as_empty(value: DriftReference | None, handler: SerializerFunctionWrapHandler) -> Any:
    return {} if value is None else handler(value)  # no reference is {} in bundle.json, as ever


StoredReference = Annotated[
    DriftReference | None, BeforeValidator(_versioned_or_none), WrapSerializer(_none_as_empty)
]
