"""Check that every product's image exists and decodes, with the serving decoder.

Decoding with :func:`rakuten_core.image.decode_image_file` (the function training and serving
use) means an image that passes here is an image the model can read. A missing or unreadable
image is reported, never fatal: the row stays with an empty ``image_path`` and the model sees a
blank image, as it would for a product listed without a picture.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rakuten_core import dataset
from rakuten_core.errors import InvalidInputError
from rakuten_core.image import decode_image_file
from rakuten_data.report import ImageSummary, Issue, issue

logger = logging.getLogger(__name__)

# Decoding at a small size is enough to prove the file is readable; JPEG draft mode makes it cheap.
CHECK_SIZE = 32


@dataclass(frozen=True)
class ImageCheck:
    """Outcome for one product image."""

    relative_path: str
    status: str  # "ok", "missing" or "unreadable"
    sha256: str = ""
    reason: str = ""


def _check_one(raw_dir: Path, relative: str) -> ImageCheck:
    path = raw_dir / relative
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ImageCheck(relative, "missing")
    except OSError as exc:
        return ImageCheck(relative, "unreadable", reason=f"cannot read: {exc.strerror}")
    try:
        decode_image_file(path, size=CHECK_SIZE)
    except (InvalidInputError, OSError) as exc:
        return ImageCheck(relative, "unreadable", reason=str(exc))
    return ImageCheck(relative, "ok", sha256=hashlib.sha256(data).hexdigest())


def check_images(
    raw_dir: Path, products: pd.DataFrame, *, workers: int = 2, progress: bool = True
) -> tuple[list[str], ImageSummary, list[Issue]]:
    """Image path per row (relative to ``raw_dir``; ``""`` when unusable), a summary, issues."""
    relatives = [
        (
            Path(dataset.IMAGES_DIR) / dataset.TRAIN_IMAGES_DIR / dataset.image_filename(i, p)
        ).as_posix()
        for i, p in zip(products["imageid"], products["productid"], strict=True)
    ]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(
            tqdm(
                pool.map(lambda rel: _check_one(raw_dir, rel), relatives, chunksize=64),
                total=len(relatives),
                desc="checking images",
                unit="img",
                disable=not progress,
            )
        )
    missing = [r for r in results if r.status == "missing"]
    unreadable = [r for r in results if r.status == "unreadable"]
    readable = sorted((r.relative_path, r.sha256) for r in results if r.status == "ok")
    digest = hashlib.sha256("".join(f"{p}\t{h}\n" for p, h in readable).encode()).hexdigest()
    summary = ImageSummary(
        present=len(readable),
        missing=len(missing),
        unreadable=len(unreadable),
        sha256=digest if readable else "",
    )
    issues: list[Issue] = []
    if missing:
        issues.append(
            issue(
                "missing_image",
                f"{len(missing)} of {len(results)} products have no image file under "
                f"{dataset.IMAGES_DIR}/{dataset.TRAIN_IMAGES_DIR}/ (kept, without image)",
                count=len(missing),
                examples=[r.relative_path for r in missing],
            )
        )
    if unreadable:
        issues.append(
            issue(
                "unreadable_image",
                f"{len(unreadable)} image files cannot be decoded (kept, without image)",
                count=len(unreadable),
                examples=[f"{r.relative_path}: {r.reason}" for r in unreadable],
            )
        )
    logger.info(
        "images: %d readable, %d missing, %d unreadable",
        len(readable),
        len(missing),
        len(unreadable),
    )
    paths = [r.relative_path if r.status == "ok" else "" for r in results]
    return paths, summary, issues
