"""The model bundle: a directory that fully describes a trained model.

Layout::

    <bundle>/model.keras   Keras 3 native format (no pickle, no Lambda layers), inference only:
                           weights and vocabularies, no optimizer state
    <bundle>/bundle.json   :class:`BundleMetadata`

:func:`save_bundle` and :func:`load_bundle` are the only way in and out. Serving never rebuilds a
label map or tokenizer: the categories and text settings travel in ``bundle.json`` and the
vocabulary inside the model. TensorFlow/Keras is imported lazily so that importing
``rakuten_core`` stays cheap for services that never touch a model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rakuten_core.categories import Category, CategoryIndex
from rakuten_core.errors import BundleError
from rakuten_core.inputs import ModelInputs

BUNDLE_SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"


class BundleMetadata(BaseModel):
    """Everything a consumer needs to use and to trust a model, besides its weights."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = BUNDLE_SCHEMA_VERSION
    model_name: str = "rakuten-multimodal"
    model_version: str = Field(description="Registry version or a timestamp-based id.")
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    categories: list[Category]
    image_size: int = Field(gt=0)
    text: dict[str, Any] = Field(default_factory=dict, description="Text settings used.")
    params: dict[str, Any] = Field(default_factory=dict, description="Training hyper-parameters.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Held-out test metrics.")
    data_fingerprint: str = ""
    reference: dict[str, Any] = Field(
        default_factory=dict, description="Reference distributions for drift detection."
    )
    git_commit: str | None = None
    mlflow_run_id: str | None = None


class Bundle:
    """A loaded bundle: the Keras model plus its metadata."""

    def __init__(self, model: Any, metadata: BundleMetadata, path: Path | None = None) -> None:
        self.model = model
        self.metadata = metadata
        self.path = path
        self.categories = CategoryIndex(metadata.categories)

    @property
    def image_size(self) -> int:
        return self.metadata.image_size

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]:
        """Class probabilities ``(N, C)`` for inputs from ``inputs.model_inputs``."""
        n = len(inputs["has_image"])
        if n == 0:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        probs = self.model.predict_on_batch(inputs)
        return np.asarray(probs, dtype=np.float32)


def inference_model(model: Any) -> Any:
    """``model`` without its training state: what a bundle stores.

    Keras 3's native format saves the optimizer of a compiled model (Adam keeps two slots per
    weight: two thirds of the production file) and has no ``include_optimizer`` switch. A new
    functional model over the same inputs, outputs and layers is uncompiled, so it saves the
    weights and vocabularies only; it shares the layers (no copy of the weights) and leaves
    ``model`` compiled, so training can go on with it.
    """
    if getattr(model, "optimizer", None) is None:
        return model
    import keras  # noqa: PLC0415  (heavy; the caller already holds a Keras model)

    return keras.Model(model.input, model.output, name=model.name)


def save_bundle(path: str | Path, model: Any, metadata: BundleMetadata) -> Path:
    """Write ``model`` (without optimizer state) and ``metadata`` to ``path`` atomically.

    An existing bundle at ``path`` is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        inference_model(model).save(staging / MODEL_FILE)
        (staging / METADATA_FILE).write_text(
            metadata.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        backup = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(target, backup)
        os.replace(staging, target)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_metadata(path: str | Path) -> BundleMetadata:
    """Read and validate ``bundle.json`` without loading the model."""
    meta_file = Path(path) / METADATA_FILE
    try:
        raw = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{meta_file} not found: not a model bundle") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_file} is not valid JSON: {exc}") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"{meta_file} has schema_version {version!r}; this code reads {BUNDLE_SCHEMA_VERSION}"
        )
    try:
        return BundleMetadata.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{meta_file} is invalid: {exc}") from None


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    Raises:
        BundleError: files missing, unknown schema version, or a model inconsistent with its
            metadata (number of classes).
    """
    root = Path(path)
    metadata = read_metadata(root)
    model_file = root / MODEL_FILE
    if not model_file.is_file():
        raise BundleError(f"{model_file} not found")
    from rakuten_core.keras_import import import_keras  # noqa: PLC0415

    keras = import_keras()  # heavy: imported only when a model is really loaded

    from rakuten_core import layers  # noqa: F401,PLC0415  (registers custom layers)

    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a corrupt or foreign file
        raise BundleError(f"{model_file} could not be loaded: {exc}") from exc
    n_out = int(model.outputs[0].shape[-1])
    if n_out != len(metadata.categories):
        raise BundleError(
            f"model outputs {n_out} classes but bundle.json lists {len(metadata.categories)}"
        )
    return Bundle(model, metadata, root)
