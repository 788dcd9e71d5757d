"""The model bundle: a directory that fully describes a trained model.

Layout::

    <bundle>/model.keras          Keras 3 native format (no pickle, no Lambda layers), inference
                                  only: weights and vocabularies, no optimizer state
    <bundle>/bundle.json          :class:`BundleMetadata`
    <bundle>/serving/model.onnx   the same model after its text layers, for ONNX Runtime
    <bundle>/serving/text.json    the text layers' vocabularies (:mod:`rakuten_core.text_vectors`)
    <bundle>/serving/wide.npz     the wide part's IDF and Dense weights, when the export computes
                                  it outside ONNX (``TextSpec.wide``; bundles exported before it
                                  keep the wide part inside ``model.onnx``)

:func:`save_bundle` and :func:`load_bundle` are the only way in and out. Serving never rebuilds a
label map or tokenizer: the categories and text settings travel in ``bundle.json`` and the
vocabulary inside the model (and in ``serving/text.json``).

Two runtimes answer :meth:`Bundle.predict_proba` with the same probabilities (the export checks
it, :mod:`rakuten_core.bundle_export`): ``onnx`` (the text vectorised in Python, the rest in
ONNX Runtime; no TensorFlow in the process) and ``keras`` (the model itself). ``load_bundle``
takes ``onnx`` when the bundle has ``serving/`` (bundles saved before it do not), and Keras
when asked or when there is no export. TensorFlow/Keras is imported lazily so that importing
``rakuten_core`` stays cheap for services that never touch a model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rakuten_core.categories import Category, CategoryIndex
from rakuten_core.errors import BundleError
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT, ModelInputs

BUNDLE_SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"
SERVING_DIR = "serving"  # rakuten_core.bundle_export writes it
ONNX_FILE = "model.onnx"
TEXT_SPEC_FILE = "text.json"
WIDE_FILE = "wide.npz"
Runtime = Literal["auto", "onnx", "keras"]
RUNTIMES: tuple[str, ...] = ("auto", "onnx", "keras")
# ONNX Runtime's intra-op threads: the variable that sizes TensorFlow's pool sizes it too, so
# one setting (RAKUTEN_WORKERS -> cores // workers in serving) holds for either runtime
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
    text: dict[str, Any] = Field(default_factory=dict, description="Text settings used.")
    params: dict[str, Any] = Field(default_factory=dict, description="Training hyper-parameters.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Held-out test metrics.")
    data_fingerprint: str = ""
    reference: dict[str, Any] = Field(
        default_factory=dict, description="Reference distributions for drift detection."
    )
    git_commit: str | None = None
    mlflow_run_id: str | None = None


class OnnxRuntime:
    """``serving/``: the text vectorised in Python, the numeric model in ONNX Runtime."""

    def __init__(self, session: Any, vectors: Any) -> None:
        self.session = session
        self.vectors = vectors
        self.input_names = [i.name for i in session.get_inputs()]
        self._ranks = {i.name: len(i.shape) for i in session.get_inputs()}

    @classmethod
    def load(cls, serving_dir: Path) -> OnnxRuntime:
        import onnxruntime  # noqa: PLC0415  (imported only when a model is loaded)

        from rakuten_core.text_vectors import TextSpec, TextVectors, WideLayer  # noqa: PLC0415

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
    """A loaded bundle: its metadata plus the runtime that predicts with it.

    ``model`` is the Keras model when the bundle was loaded with the ``keras`` runtime, else
    ``None`` (``runtime`` is then an :class:`OnnxRuntime`).
    """

    def __init__(
        self,
        model: Any,
        metadata: BundleMetadata,
        path: Path | None = None,
        *,
        runtime: OnnxRuntime | None = None,
    ) -> None:
        self.model = model
        self.runtime = runtime
        self.metadata = metadata
        self.path = path
        self.categories = CategoryIndex(metadata.categories)

    @property
    def runtime_name(self) -> str:
        return "keras" if self.runtime is None else "onnx"

    @property
    def image_size(self) -> int:
        return self.metadata.image_size

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]:
        """Class probabilities ``(N, C)`` for inputs from ``inputs.model_inputs``."""
        n = len(inputs["has_image"])
        if n == 0:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        if self.runtime is not None:
            return self.runtime.predict_proba(inputs)
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


def save_bundle(
    path: str | Path, model: Any, metadata: BundleMetadata, *, serving: bool = True
) -> Path:
    """Write ``model`` (without optimizer state) and ``metadata`` to ``path`` atomically.

    With ``serving`` (the default), also the TensorFlow-free runtime's ``serving/`` export,
    checked against ``model`` (:func:`rakuten_core.bundle_export.export_serving`; needs
    tf2onnx). An existing bundle at ``path`` is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        inference_model(model).save(staging / MODEL_FILE)
        if serving:
            from rakuten_core.bundle_export import export_serving  # noqa: PLC0415 (TF, tf2onnx)

            export_serving(staging / MODEL_FILE, staging, metadata.image_size)
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


def load_bundle(path: str | Path, runtime: Runtime = "auto") -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    ``runtime``: ``onnx`` (needs ``serving/``), ``keras``, or ``auto``: ``onnx`` when the bundle
    has ``serving/`` and ONNX Runtime is installed, else ``keras``.

    Raises:
        BundleError: files missing, unknown schema version, or a model inconsistent with its
            metadata (number of classes).
    """
    root = Path(path)
    metadata = read_metadata(root)
    serving_dir = root / SERVING_DIR
    if resolve_runtime(root, runtime) == "onnx":
        if not serving_dir.is_dir():
            raise BundleError(f"{serving_dir} not found: the bundle has no ONNX export")
        onnx = OnnxRuntime.load(serving_dir)
        _check_classes(onnx.num_classes, metadata)
        return Bundle(None, metadata, root, runtime=onnx)
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
    _check_classes(int(model.outputs[0].shape[-1]), metadata)
    return Bundle(model, metadata, root)


def resolve_runtime(path: str | Path, runtime: Runtime = "auto") -> str:
    """The runtime ``load_bundle(path, runtime)`` uses: ``onnx`` or ``keras``.

    ``auto`` is ``onnx`` when the bundle has ``serving/`` and ONNX Runtime is installed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    import importlib.util  # noqa: PLC0415

    exported = (Path(path) / SERVING_DIR).is_dir()
    return "onnx" if exported and importlib.util.find_spec("onnxruntime") else "keras"


def _check_classes(n_out: int, metadata: BundleMetadata) -> None:
    if n_out != len(metadata.categories):
        raise BundleError(
            f"model outputs {n_out} classes but bundle.json lists {len(metadata.categories)}"
        )
