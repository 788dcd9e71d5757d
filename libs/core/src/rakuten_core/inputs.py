"""The model's input contract: names, shapes and dtypes of the tensors a bundle's model takes.

A bundle's Keras model has three inputs, built by :func:`model_inputs` for API, batch and
evaluation alike (training builds the same tensors through the same decode/clean functions):

- ``text``: string ``(N, 1)``, the cleaned product text (:func:`rakuten_core.text.product_text`);
  ``""`` when the product has no text (image-only inference);
- ``image``: uint8 ``(N, S, S, 3)``, decoded by :func:`rakuten_core.image.decode_image`; zeros
  when the product has no usable image;
- ``has_image``: float32 ``(N, 1)``, 1.0 when ``image`` is a real image, else 0.0, so the model
  ignores the image branch instead of reading a black picture as evidence.

The output is ``(N, C)`` float32 class probabilities in the bundle's category order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from rakuten_core.image import ImageArray, blank_image

TEXT_INPUT = "text"
IMAGE_INPUT = "image"
HAS_IMAGE_INPUT = "has_image"

ModelInputs = dict[str, NDArray[np.generic]]


def model_inputs(
    texts: Sequence[str], images: Sequence[ImageArray | None], *, image_size: int
) -> ModelInputs:
    """Stack cleaned texts and decoded images (``None`` = missing) into the model's inputs."""
    if len(texts) != len(images):
        raise ValueError(f"{len(texts)} texts but {len(images)} images")
    blank = blank_image(image_size)
    stacked = (
        np.stack([blank if img is None else img for img in images])
        if images
        else (np.zeros((0, image_size, image_size, 3), dtype=np.uint8))
    )
    if stacked.shape[1:] != (image_size, image_size, 3):
        raise ValueError(f"images must be {image_size}x{image_size}x3, got {stacked.shape[1:]}")
    return {
        TEXT_INPUT: np.asarray(list(texts), dtype=object).reshape(-1, 1),
        IMAGE_INPUT: stacked.astype(np.uint8, copy=False),
        HAS_IMAGE_INPUT: np.asarray(
            [[0.0 if img is None else 1.0] for img in images], dtype=np.float32
        ).reshape(-1, 1),
    }
