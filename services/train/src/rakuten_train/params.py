"""Training hyper-parameters: the ``train:`` section of ``params.yaml``, typed and validated.

Every field has a default suited to the generated sample on 2 CPU cores, so an empty or partial
section works; unknown keys are refused (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

ClassWeighting = Literal["none", "balanced", "sqrt_balanced"]
Backbone = Literal["cnn", "mobilenet_v2", "efficientnet_b0"]
CharAnalyzer = Literal["char", "char_wb"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextParams(_Section):
    """Text branch: a deep part (embedding + LSTM) and a wide part (bag of n-grams, TF-IDF)."""

    max_tokens: int = Field(default=20_000, gt=2, description="LSTM vocabulary size")
    sequence_length: int = Field(default=64, gt=0, description="tokens read by the LSTM")
    embedding_dim: int = Field(default=64, gt=0)
    lstm_units: int = Field(default=64, ge=0, description="0 disables the LSTM (ablation)")
    bidirectional: bool = True
    lstm_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="dropout on the LSTM's output features"
    )
    lstm_branch_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="probability of zeroing a training example's whole LSTM feature vector",
    )
    word_ngrams: int = Field(default=2, ge=1, description="word n-grams 1..N of the wide part")
    word_max_tokens: int = Field(
        default=40_000, ge=0, description="0 disables the word TF-IDF input"
    )
    char_analyzer: CharAnalyzer = Field(
        default="char",
        description="char: n-grams across the text; char_wb: inside each word (scikit-learn's)",
    )
    char_ngram_min: int = Field(default=2, ge=1)
    char_ngram_max: int = Field(default=5, ge=1)
    char_max_tokens: int = Field(
        default=40_000, ge=0, description="0 disables the char TF-IDF input"
    )
    char_max_chars: int = Field(default=1000, gt=0, description="characters read for char n-grams")
    wide_dropout: float = Field(default=0.6, ge=0.0, lt=1.0)
    wide_units: int = Field(default=256, ge=0, description="hidden units over TF-IDF; 0 = linear")


class ImageParams(_Section):
    """Image branch: a small CNN from scratch, or a Keras applications backbone."""

    backbone: Backbone = "cnn"
    weights: str | None = Field(default=None, description="local .weights.h5 for the backbone")
    trainable: bool = True
    filters: tuple[int, ...] = (16, 32, 64)
    units: int = Field(default=64, gt=0)
    augment: bool = True


class RegistryParams(_Section):
    """MLflow model registry: the name models are registered under.

    The promotion rule is not here: it is the gate's (``gate.test_margin``), one rule for the
    train job and the retraining loop.
    """

    model_name: str = "rakuten-multimodal"

    @model_validator(mode="before")
    @classmethod
    def _moved_margin(cls, data: Any) -> Any:
        if isinstance(data, dict) and "promotion_margin" in data:
            raise ValueError(
                "registry.promotion_margin is gone: promotion follows gate.test_margin "
                "(params.yaml gate: section), one rule for training and the retraining loop"
            )
        return data


class TrainParams(_Section):
    """All hyper-parameters of one training run."""

    seed: int = 42
    deterministic: bool = Field(default=True, description="tf op determinism (slightly slower)")
    image_size: int = Field(default=64, ge=32)
    batch_size: int = Field(default=64, gt=0)
    epochs: int = Field(default=10, gt=0)
    learning_rate: float = Field(default=2e-3, gt=0)
    early_stopping_patience: int = Field(default=3, ge=0, description="0 disables early stopping")
    class_weight: ClassWeighting = "sqrt_balanced"
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=1.0)
    fusion_dropout: float = Field(default=0.3, ge=0.0, lt=1.0)
    modality_dropout_text: float = Field(default=0.2, ge=0.0, lt=1.0)
    modality_dropout_image: float = Field(default=0.2, ge=0.0, lt=1.0)
    cache_images: bool = Field(
        default=True, description="keep decoded images in memory after epoch 1"
    )
    text: TextParams = TextParams()
    image: ImageParams = ImageParams()
    registry: RegistryParams = RegistryParams()

    @model_validator(mode="after")
    def _check_ngrams(self) -> TrainParams:
        if self.text.char_ngram_min > self.text.char_ngram_max:
            raise ValueError("text.char_ngram_min must be <= text.char_ngram_max")
        return self

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, for MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, sub)
            else:
                out[prefix] = value

        walk("", self.model_dump(mode="json"))
        return out


def load_params(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainParams:
    """Read the ``train:`` section of ``path`` (missing file or section = defaults).

    ``overrides`` (dotted keys, e.g. ``{"epochs": 2, "text.lstm_units": 8}``) are applied on top,
    which is how tests and benchmarks shrink the model without a second params file.
    """
    section: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        section = dict(loaded.get("train") or {})
    for dotted, value in (overrides or {}).items():
        node = section
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return TrainParams.model_validate(section)
