"""The model bundle: a directory that fully describes a trained model.

Layout::

    <bundle>/model.keras          Keras 3 native format (no pickle, no Lambda layers), inference
                                  only: weights and vocabularies, no optimizer state; read by
                                  training only (evaluation, the export)
    <bundle>/bundle.json          :class:`BundleMetadata`
    <bundle>/serving/model.onnx   the same model after its text layers, for ONNX Runtime
    <bundle>/serving/text.json    the text layers' vocabularies (:mod:`rakuten_core.text_vectors`)
    <bundle>/serving/wide.npz     the wide part's IDF and Dense weights, when the export computes
                                  it outside ONNX (``TextSpec.wide``; bundles exported before it
                                  keep the wide part inside ``model.onnx``)

This module is the reading side of the contract, and imports no TensorFlow: :func:`load_bundle`
gives serving, batch prediction and the MLflow pyfunc the ONNX runtime (the text vectorised in
Python, the rest in ONNX Runtime). Training writes bundles (``rakuten_train.export``: the Keras
model, then ``serving/``, checked against it) through :func:`write_bundle`, and evaluates the
Keras model through the same :class:`Bundle` interface. A bundle without ``serving/`` (saved
before the export existed) is refused with the command that writes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from rakuten_core.bundle_fields import HeldOutMetrics, StoredReference, TextSettings
from rakuten_core.categories import Category, CategoryIndex
from rakuten_core.errors import BundleError
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT, ModelInputs
from rakuten_core.text_spec import TextSpec
from rakuten_core.text_vectors import TextVectors
from rakuten_core.text_wide import WideLayer

BUNDLE_SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"
SERVING_DIR = "serving"  # rakuten_train.export writes it
ONNX_FILE = "model.onnx"
TEXT_SPEC_FILE = "text.json"
WIDE_FILE = "wide.npz"
EXPORT_COMMAND = "rakuten-train export"  # writes serving/ for a bundle saved without it
# ONNX Runtime's intra-op threads: the variable that sizes TensorFlow's pool in training, so one
# setting (RAKUTEN_WORKERS -> cores // workers in serving) sizes the model's threads everywhere
INTRA_OP_THREADS_ENV = "TF_NUM_INTRAOP_THREADS"


class BundleMetadata(BaseModel):
    """Everything a consumer needs to use and to trust a model, besides its weights."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = BUNDLE_SCHEMA_VERSION
    model_name: str = "rakuten-multimodal"
    model_version: str = Field(description="Registry version or a timestamp-based id.")
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    categories: list[Category]
    image_size: int = Field(gt=0)
    text: TextSettings = Field(description="Text settings used.")
    # rakuten_train.params.TrainParams as JSON: a record (MLflow logs it too) that nothing reads
    # back, and core cannot import training's model of it
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="Training hyper-parameters."
    )
    metrics: HeldOutMetrics = Field(description="Held-out test metrics.")
    data_fingerprint: str = ""
    reference: StoredReference = Field(
        default=None,
        description="Reference distributions for drift detection; none ({} in bundle.json) in a "
        "bundle trained before the drift module.",
    )
    git_commit: str | None = None
    mlflow_run_id: str | None = None


class ProbabilityModel(Protocol):
    """What :class:`Bundle` predicts with: the ONNX runtime, or training's Keras model."""

    name: str

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]: ...


class OnnxRuntime:
    """``serving/``: the text vectorised in Python, the numeric model in ONNX Runtime."""

    name = "onnx"

    def __init__(self, session: Any, vectors: Any) -> None:
        self.session = session
        self.vectors = vectors
        self.input_names = [i.name for i in session.get_inputs()]
        self._ranks = {i.name: len(i.shape) for i in session.get_inputs()}

    @classmethod
    def load(cls, serving_dir: Path) -> OnnxRuntime:
        import onnxruntime  # noqa: PLC0415  (optional: a dependency of the services, not of core)

        model_file = serving_dir / ONNX_FILE
        spec_file = serving_dir / TEXT_SPEC_FILE
        try:
            spec = TextSpec.model_validate_json(spec_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BundleError(f"{spec_file} could not be read: {exc}") from exc
        wide = None
        if spec.wide is not None:
            wide_file = serving_dir / WIDE_FILE
            try:
                wide = WideLayer.load(wide_file, spec.wide)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise BundleError(f"{wide_file} could not be read: {exc}") from exc
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1  # one model call at a time (the batcher serialises)
        options.intra_op_num_threads = int(os.environ.get(INTRA_OP_THREADS_ENV) or 0)
        options.log_severity_level = 3  # errors only
        # idle pool threads sleep instead of spinning: between batches the CPU is the server's
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(
                str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own types for a missing or corrupt file
            raise BundleError(f"{model_file} could not be loaded: {exc}") from exc
        return cls(session, TextVectors(spec, wide))

    @property
    def num_classes(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]:
        texts = [str(t) for t in np.asarray(inputs[TEXT_INPUT]).reshape(-1)]
        feed: dict[str, Any] = {
            IMAGE_INPUT: np.ascontiguousarray(inputs[IMAGE_INPUT], dtype=np.uint8),
            HAS_IMAGE_INPUT: np.asarray(inputs[HAS_IMAGE_INPUT], dtype=np.float32).reshape(-1, 1),
        }
        for name, array in self.vectors(texts).items():
            # the tensors keep Keras' shapes: dense counts are (N, 1, V)
            feed[name] = array.reshape(len(texts), *([1] * (self._ranks[name] - 2)), -1)
        (probs,) = self.session.run(None, {name: feed[name] for name in self.input_names})
        return np.asarray(probs, dtype=np.float32)


class Bundle:
    """A loaded bundle: its metadata plus the model that predicts with it (``runtime``)."""

    def __init__(
        self, metadata: BundleMetadata, path: Path | None = None, *, runtime: ProbabilityModel
    ) -> None:
        self.runtime = runtime
        self.metadata = metadata
        self.path = path
        self.categories = CategoryIndex(metadata.categories)

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    @property
    def image_size(self) -> int:
        return self.metadata.image_size

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]:
        """Class probabilities ``(N, C)`` for inputs from ``inputs.model_inputs``."""
        n = len(inputs["has_image"])
        if n == 0:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        return self.runtime.predict_proba(inputs)


def write_bundle(path: str | Path, metadata: BundleMetadata, fill: Callable[[Path], None]) -> Path:
    """Write a bundle at ``path`` atomically: ``fill(staging)`` writes the model files into a
    staging directory beside ``path``, then ``bundle.json`` is added and the directory renamed
    over ``path`` (an existing bundle there is replaced; on any error nothing changes).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(staging)
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
    """Load a bundle's ONNX runtime (``serving/``) and metadata.

    Raises:
        BundleError: files missing (a bundle without ``serving/`` names the command that writes
            it), unknown schema version, or a model inconsistent with its metadata (number of
            classes).
    """
    root = Path(path)
    metadata = read_metadata(root)
    serving_dir = root / SERVING_DIR
    if not serving_dir.is_dir():
        raise BundleError(
            f"{serving_dir} not found: the bundle has no ONNX export (it was saved before the "
            f"export existed); write it with `{EXPORT_COMMAND} {root}`"
        )
    onnx = OnnxRuntime.load(serving_dir)
    check_classes(onnx.num_classes, metadata)
    return Bundle(metadata, root, runtime=onnx)


def check_classes(n_out: int, metadata: BundleMetadata) -> None:
    """Refuse a model whose output size is not the number of categories in its metadata."""
    if n_out != len(metadata.categories):
        raise BundleError(
            f"model outputs {n_out} classes but bundle.json lists {len(metadata.categories)}"
        )
