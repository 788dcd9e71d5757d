"""The prepared splits as arrays, and their images decoded as serving decodes them.

Training's ``tf.data`` input pipeline (:mod:`rakuten_train.pipeline`) and evaluation, which runs
the bundle's ONNX export (:mod:`rakuten_train.evaluation`), both read the splits here; this
module imports no TensorFlow, so evaluating or gating a bundle never loads it.

Images are decoded by :func:`rakuten_core.image.decode_image_file`, the function serving and
batch prediction use. A missing (``image_path == ""``) or undecodable image is the blank image
with ``has_image = 0``, as :func:`rakuten_core.inputs.model_inputs` does for ``None``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.dataset import LABEL_COLUMN, PROCESSED_COLUMNS
from rakuten_core.errors import DataValidationError, RakutenError
from rakuten_core.image import ImageArray, blank_image, decode_image_file

logger = logging.getLogger(__name__)

Modality = Literal["fused", "text_only", "image_only"]
MODALITIES: tuple[Modality, ...] = ("fused", "text_only", "image_only")


@dataclass(frozen=True)
class Split:
    """One prepared split, as arrays the pipeline slices."""

    texts: NDArray[np.object_]
    image_paths: NDArray[np.object_]  # absolute, "" when missing
    labels: NDArray[np.int64]  # index in the bundle's category order
    descriptions: NDArray[np.object_] | None = None  # raw descriptions, for drift references

    def __len__(self) -> int:
        return len(self.labels)


def load_split(
    processed: str | Path, split: str, raw: str | Path, categories: CategoryIndex | None = None
) -> Split:
    """Read ``<processed>/<split>.parquet``; labels re-derived from ``prdtypecode``."""
    file = Path(processed) / f"{split}.parquet"
    if not file.is_file():
        raise DataValidationError(f"{file} not found: run `rakuten-data prepare` first")
    frame = pd.read_parquet(file)
    missing = [c for c in ("text", "image_path", LABEL_COLUMN) if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{file} lacks columns {missing}; expected {PROCESSED_COLUMNS}")
    index = categories or CategoryIndex(CATEGORIES)
    try:
        labels = np.asarray([index.index_of(int(c)) for c in frame[LABEL_COLUMN]], dtype=np.int64)
    except KeyError as exc:
        raise DataValidationError(f"{file}: {exc.args[0]}") from None
    raw_dir = Path(raw).resolve()
    paths = [str(raw_dir / p) if isinstance(p, str) and p else "" for p in frame["image_path"]]
    texts = frame["text"].fillna("").astype(str).to_numpy(dtype=object)
    descriptions = (
        frame["description"].fillna("").astype(str).to_numpy(dtype=object)
        if "description" in frame.columns
        else None
    )
    return Split(
        texts=texts,
        image_paths=np.asarray(paths, dtype=object),
        labels=labels,
        descriptions=descriptions,
    )


def decode_or_blank(path: str, size: int) -> tuple[NDArray[np.uint8], float]:
    """Decoded image and 1.0, or the blank image and 0.0 when missing or unreadable."""
    if not path:
        return blank_image(size), 0.0
    try:
        return decode_image_file(path, size=size), 1.0
    except (RakutenError, OSError) as exc:
        logger.warning("image %s unusable, treated as missing: %s", path, exc)
        return blank_image(size), 0.0


def decode_split(split: Split, size: int) -> list[ImageArray | None]:
    """Each row's image at ``size`` (``None``: missing or unusable), in the split's order.

    Decoded on a few threads (Pillow releases the GIL while it decodes and resizes).
    """
    workers = max(1, min(8, os.cpu_count() or 1))

    def one(path: object) -> ImageArray | None:
        image, has = decode_or_blank(str(path), size)
        return image if has else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, split.image_paths))
