"""Training's ``tf.data`` input pipeline: a prepared split -> the model's input tensors.

Texts come from the ``text`` column (already :func:`rakuten_core.text.product_text` output);
images are decoded by :func:`rakuten_train.splits.decode_or_blank` (serving's decode function),
called through ``tf.numpy_function`` in a parallel ``map``. Decoded images can be cached in
memory after the first pass (``cache_images``), then batches are prefetched. Reading the splits
lives in :mod:`rakuten_train.splits`, which evaluation uses without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT
from rakuten_train.splits import Modality, Split, decode_or_blank


def _decoder(size: int) -> Callable[[Any], tuple[NDArray[np.uint8], NDArray[np.float32]]]:
    def decode(path: Any) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        raw = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        image, has = decode_or_blank(raw, size)
        return image, np.asarray([has], dtype=np.float32)

    return decode


def make_dataset(
    split: Split,
    *,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = False,
    sample_weights: NDArray[np.float32] | None = None,
    modality: Modality = "fused",
    with_labels: bool = True,
) -> tf.data.Dataset:
    """Batches of ``({text, image, has_image}, label[, weight])`` in ``split`` order.

    ``modality`` blanks one input for the ablation evaluations: ``text_only`` feeds the blank
    image with ``has_image = 0`` (no file is read), ``image_only`` feeds ``""`` as text.
    """
    texts = split.texts if modality != "image_only" else np.full(len(split), "", dtype=object)
    paths = split.image_paths if modality != "text_only" else np.full(len(split), "", object)
    columns: list[Any] = [
        tf.constant(texts.astype(str).tolist(), dtype=tf.string),
        tf.constant(paths.astype(str).tolist(), dtype=tf.string),
    ]
    decode = _decoder(image_size)

    def load(text: tf.Tensor, path: tf.Tensor) -> dict[str, tf.Tensor]:
        image, has = tf.numpy_function(decode, [path], [tf.uint8, tf.float32], stateful=False)
        image.set_shape((image_size, image_size, 3))
        has.set_shape((1,))
        return {TEXT_INPUT: tf.reshape(text, (1,)), IMAGE_INPUT: image, HAS_IMAGE_INPUT: has}

    features = tf.data.Dataset.from_tensor_slices(tuple(columns)).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if cache:
        features = features.cache()
    parts: list[tf.data.Dataset] = [features]
    if with_labels:
        parts.append(tf.data.Dataset.from_tensor_slices(split.labels))
        if sample_weights is not None:
            parts.append(tf.data.Dataset.from_tensor_slices(sample_weights.astype(np.float32)))
    ds = features if len(parts) == 1 else tf.data.Dataset.zip(tuple(parts))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def class_weights(labels: NDArray[np.int64], num_classes: int, mode: str) -> NDArray[np.float32]:
    """Per-class loss weights, normalised so that the mean weight per training example is 1.

    ``balanced``: ``n / (K * n_c)`` (K = classes present); ``sqrt_balanced``: its square root,
    which lifts rare classes without letting a handful of examples dominate; ``none``: ones.
    Classes absent from training get weight 0 (they have no examples anyway).
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if mode == "none":
        weights[present] = 1.0
    else:
        raw = counts.sum() / (present.sum() * counts[present])
        weights[present] = np.sqrt(raw) if mode == "sqrt_balanced" else raw
    mean = float((weights * counts).sum() / counts.sum())
    return (weights / mean).astype(np.float32)
