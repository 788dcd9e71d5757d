"""The predictions CSV: one row per input product, written as batches arrive.

Columns: the input's unnamed index column (so the file aligns with ``Y``-format label files and
is a valid challenge submission read with ``index_col=0``), ``productid``, ``imageid``, the
predicted ``prdtypecode``, its ``category`` name (English) and ``category_fr``, its
``probability``, then ``top{k}_code`` / ``top{k}_probability`` for the ``k`` best classes.

The file is written to a temporary name next to the target and renamed on success, so a failed
or interrupted run never leaves a half-written file that looks complete (DVC relies on that).
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from rakuten_core.categories import CategoryIndex
from rakuten_predict.engine import PreparedRow

TOP_K = 3


def output_columns(top_k: int = TOP_K) -> list[str]:
    columns = ["", "productid", "imageid", "prdtypecode", "category", "category_fr", "probability"]
    for k in range(1, top_k + 1):
        columns += [f"top{k}_code", f"top{k}_probability"]
    return columns


def top_k(probabilities: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """Indices of the ``k`` most probable classes per row, best first (stable on ties)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


class PredictionWriter:
    """Context manager writing prediction rows to ``path`` atomically."""

    def __init__(self, path: str | Path, categories: CategoryIndex, *, top: int = TOP_K) -> None:
        self.path = Path(path)
        self.categories = categories
        self.top = min(top, len(categories))
        self._tmp: Path | None = None
        self._fh: TextIO | None = None
        self.rows_written = 0

    def __enter__(self) -> PredictionWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._tmp = Path(name)
        os.chmod(self._tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(output_columns(self.top))
        return self

    def write(
        self, rows: list[PreparedRow], probabilities: NDArray[np.float32]
    ) -> NDArray[np.intp]:
        """Write one batch; returns the predicted class index of each row."""
        best = top_k(probabilities, self.top)
        cats = self.categories.categories
        for prepared, order, probs in zip(rows, best, probabilities, strict=True):
            row = prepared.row
            first = cats[int(order[0])]
            record: list[object] = [
                row.index,
                row.productid,
                row.imageid,
                first.code,
                first.name_en,
                first.name_fr,
                f"{probs[order[0]]:.6f}",
            ]
            for idx in order:
                record += [cats[int(idx)].code, f"{probs[idx]:.6f}"]
            self._csv.writerow(record)
        self.rows_written += len(rows)
        return best[:, 0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._fh is not None and self._tmp is not None
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
