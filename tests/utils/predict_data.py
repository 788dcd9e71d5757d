"""Challenge-format product folders built from the real rows and images of ``../shared``."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from tests.utils.paths import shared_data

GARBAGE_IMAGE = b"this is not a jpeg"
EMPTY_TEXT_ROW = 5


def make_labelled_products(root: str | Path, *, rows: int = 60) -> Path:
    """Write ``x.csv``, ``y.csv`` and ``images/`` under ``root`` and return ``root``.

    ``x.csv`` holds the first ``rows`` real training rows (byte-exact fields: HTML descriptions,
    empty descriptions), ``y.csv`` their real labels, ``images/`` the real JPEGs the shared copy
    has for them. On top of the real gaps (rows whose image is not in the shared copy, i.e.
    missing files), the second available image is replaced by garbage bytes (unreadable) and row
    :data:`EMPTY_TEXT_ROW` gets an empty designation and description, so every degraded case is
    present.
    """
    base = Path(root)
    sample = shared_data("raw_sample")
    images = shared_data("images", "train")
    with (sample / "X_train.csv").open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1 : rows + 1]
    body[EMPTY_TEXT_ROW][1] = ""
    body[EMPTY_TEXT_ROW][2] = ""
    out_images = base / "images"
    out_images.mkdir(parents=True, exist_ok=True)
    with_image = []
    for row in body:
        name = f"image_{row[4]}_product_{row[3]}.jpg"
        if (images / name).is_file():
            shutil.copy(images / name, out_images / name)
            with_image.append(name)
    (out_images / with_image[1]).write_bytes(GARBAGE_IMAGE)
    with (base / "x.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    with (sample / "Y_train.csv").open(encoding="utf-8", newline="") as fh:
        labels = list(csv.reader(fh))[: len(body) + 1]
    with (base / "y.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(labels)
    return base
