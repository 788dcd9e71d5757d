"""Training's side of the bundle: save the Keras model with its ONNX export, load it back.

:func:`stage_bundle` writes ``model.keras`` (without optimizer state) and ``serving/`` (the
export, checked against the model, :mod:`rakuten_train.export.serving`) into a staging
directory, where training evaluates the export before it knows the bundle's metadata;
:meth:`StagedBundle.save` then writes the bundle through
:func:`rakuten_core.bundle.write_bundle`. :func:`save_bundle` does both at once.
:func:`load_keras_bundle` gives the parity checks the Keras model behind the same
:class:`~rakuten_core.bundle.Bundle` interface serving uses with ONNX.
:func:`export_bundle` writes ``serving/`` for a bundle saved before the export existed (the
command ``rakuten-train export`` that :func:`rakuten_core.bundle.load_bundle` names).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from rakuten_core.bundle import (
    MODEL_FILE,
    SERVING_DIR,
    Bundle,
    BundleMetadata,
    OnnxRuntime,
    check_classes,
    read_metadata,
    write_bundle,
)
from rakuten_core.errors import BundleError
from rakuten_core.inputs import ModelInputs
from rakuten_train import layers  # noqa: F401  (registers the custom layers for loading)
from rakuten_train.export.serving import export_serving


class KerasRuntime:
    """The Keras model as a :class:`rakuten_core.bundle.ProbabilityModel`."""

    name = "keras"

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, inputs: ModelInputs) -> NDArray[np.float32]:
        return np.asarray(self.model.predict_on_batch(inputs), dtype=np.float32)


class KerasBundle(Bundle):
    """A bundle loaded with its Keras model (``model``), as evaluation needs it."""

    def __init__(self, metadata: BundleMetadata, path: Path, model: Any) -> None:
        super().__init__(metadata, path, runtime=KerasRuntime(model))
        self.model = model


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
    return keras.Model(model.input, model.output, name=model.name)


class StagedBundle:
    """A bundle's model files before its metadata: ``model.keras`` and, unless left out, the
    checked ONNX export, in a staging directory beside the bundle's path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def runtime(self) -> OnnxRuntime:
        """The export, loaded as serving loads it (what evaluation scores)."""
        return OnnxRuntime.load(self.directory / SERVING_DIR)

    def save(self, path: str | Path, metadata: BundleMetadata) -> Path:
        """Move the files into the bundle at ``path``, written atomically with ``metadata``."""

        def fill(staging: Path) -> None:
            for entry in self.directory.iterdir():
                os.replace(entry, staging / entry.name)

        return write_bundle(path, metadata, fill)


@contextmanager
def stage_bundle(
    model: Any, image_size: int, *, near: str | Path, serving: bool = True
) -> Iterator[StagedBundle]:
    """Stage ``model`` (without optimizer state) and its export for a bundle at ``near``.

    The staging directory is beside ``near`` (so that saving moves files instead of copying
    them) and is removed on leaving, saved or not. With ``serving`` (the default), the ONNX
    export serving and batch prediction load is written and checked against ``model``;
    ``serving=False`` stages a bundle as saved before the export existed (tests of the refusal
    and of ``rakuten-train export``).
    """
    target = Path(near)
    target.parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f".{target.name}-model-", dir=target.parent))
    try:
        inference_model(model).save(directory / MODEL_FILE)
        if serving:
            export_serving(directory / MODEL_FILE, directory, image_size)
        yield StagedBundle(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def save_bundle(
    path: str | Path, model: Any, metadata: BundleMetadata, *, serving: bool = True
) -> Path:
    """Write ``model`` (without optimizer state) and ``metadata`` to ``path`` atomically.

    With ``serving`` (the default), also the ONNX export serving and batch prediction load,
    checked against ``model`` (:func:`stage_bundle`). An existing bundle at ``path`` is
    replaced.
    """
    with stage_bundle(model, metadata.image_size, near=path, serving=serving) as staged:
        return staged.save(path, metadata)


def load_keras_bundle(path: str | Path) -> KerasBundle:
    """The bundle at ``path`` with its Keras model (``bundle.model``), for the parity checks.

    Raises:
        BundleError: files missing or corrupt, or a model inconsistent with its metadata.
    """
    root = Path(path)
    metadata = read_metadata(root)
    model_file = root / MODEL_FILE
    if not model_file.is_file():
        raise BundleError(f"{model_file} not found")
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a corrupt or foreign file
        raise BundleError(f"{model_file} could not be loaded: {exc}") from exc
    check_classes(int(model.outputs[0].shape[-1]), metadata)
    return KerasBundle(metadata, root, model)


def export_bundle(path: str | Path) -> Path:
    """Write (or rewrite) ``serving/`` of the bundle at ``path`` from its ``model.keras``.

    The export is built and checked in a staging directory and only then replaces the old
    ``serving/``, so a failed export leaves the bundle as it was.
    """
    root = Path(path)
    metadata = read_metadata(root)
    if not (root / MODEL_FILE).is_file():
        raise BundleError(f"{root / MODEL_FILE} not found: nothing to export")
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    try:
        export_serving(root / MODEL_FILE, staging, metadata.image_size)
        old = root / f".{SERVING_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if (root / SERVING_DIR).exists():
            (root / SERVING_DIR).rename(old)
        (staging / SERVING_DIR).rename(root / SERVING_DIR)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / SERVING_DIR
