"""The recent feedback holdout, read from the raw layout ``rakuten-data export-feedback`` writes.

``data/feedback/holdout/`` holds one ``X_*.csv`` (index, designation, description, productid,
imageid), one ``Y_*.csv`` (index, prdtypecode) and the images as
``image_<imageid>_product_<productid>.jpg`` anywhere below it. Those rows are never trained on:
they are the most recent feedback, the gate's second test. Texts go through
:func:`rakuten_core.text.product_text`, as ``rakuten-data prepare`` does for the splits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.dataset import LABEL_COLUMN, image_filename
from rakuten_core.errors import DataValidationError
from rakuten_core.text import product_text
from rakuten_train.splits import Split

logger = logging.getLogger(__name__)


def _one(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    if len(found) > 1:
        raise DataValidationError(f"{folder}: several {pattern} files: {[p.name for p in found]}")
    return found[0] if found else None


def load_holdout(folder: str | Path) -> Split | None:
    """The holdout as a :class:`Split`; ``None`` when there is no holdout (no folder, no files).

    Raises:
        DataValidationError: the files exist but do not match (row ids, columns, unknown codes).
    """
    base = Path(folder)
    if not base.is_dir():
        return None
    x_file, y_file = _one(base, "X_*.csv"), _one(base, "Y_*.csv")
    if x_file is None and y_file is None:
        return None
    if x_file is None or y_file is None:
        raise DataValidationError(f"{base}: needs one X_*.csv and one Y_*.csv, found one only")
    x = pd.read_csv(x_file, index_col=0, dtype=str, keep_default_na=False)
    y = pd.read_csv(y_file, index_col=0, dtype=str, keep_default_na=False)
    missing = [c for c in ("designation", "productid", "imageid") if c not in x.columns]
    missing += [] if LABEL_COLUMN in y.columns else [LABEL_COLUMN]
    if missing:
        raise DataValidationError(f"{base}: the holdout files lack column(s) {missing}")
    if list(x.index) != list(y.index):
        raise DataValidationError(f"{x_file.name} and {y_file.name} do not list the same rows")
    categories = CategoryIndex(CATEGORIES)
    try:
        labels = np.asarray([categories.index_of(int(c)) for c in y[LABEL_COLUMN]], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataValidationError(f"{y_file.name}: {exc}") from None
    images = {p.name: p.resolve() for p in base.rglob("image_*_product_*.*")}
    paths = []
    for imageid, productid in zip(x["imageid"], x["productid"], strict=True):
        try:
            found = images.get(image_filename(int(imageid), int(productid)))
        except ValueError:
            found = None
        paths.append(str(found) if found is not None else "")
    description = x["description"] if "description" in x.columns else [""] * len(x)
    texts = [product_text(d, e) for d, e in zip(x["designation"], description, strict=True)]
    logger.info(
        "feedback holdout %s: %d rows, %d with their image", base, len(x), sum(map(bool, paths))
    )
    return Split(
        texts=np.asarray(texts, dtype=object),
        image_paths=np.asarray(paths, dtype=object),
        labels=labels,
    )
