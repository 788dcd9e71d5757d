"""The run summary: what was predicted, by which model, how fast, and which rows were degraded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rakuten_core.categories import CategoryIndex
from rakuten_predict.engine import PreparedRow


@dataclass
class SummaryBuilder:
    """Accumulates per-batch facts in O(classes + degraded rows) memory."""

    categories: CategoryIndex
    counts: Counter[int] = field(default_factory=Counter)
    confidence_sum: float = 0.0
    rows: int = 0
    missing_image: list[dict[str, Any]] = field(default_factory=list)
    unreadable_image: list[dict[str, Any]] = field(default_factory=list)
    empty_text: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, rows: list[PreparedRow], best: NDArray[np.intp], probabilities: NDArray[np.float32]
    ) -> None:
        for prepared, idx, probs in zip(rows, best, probabilities, strict=True):
            self.counts[self.categories.code_of(int(idx))] += 1
            self.confidence_sum += float(probs[idx])
            ref = {
                "line": prepared.row.line,
                "index": prepared.row.index,
                "productid": prepared.row.productid,
                "imageid": prepared.row.imageid,
            }
            if prepared.image_status == "missing":
                self.missing_image.append(ref)
            elif prepared.image_status == "unreadable":
                self.unreadable_image.append({**ref, "error": prepared.image_error})
            if not prepared.text:
                self.empty_text.append(ref)
        self.rows += len(rows)

    def build(self, **extra: Any) -> dict[str, Any]:
        """The summary document; ``extra`` (model, inputs, throughput, metrics) is merged in."""
        counts = {
            str(c.code): {
                "category": c.name_en,
                "count": self.counts.get(c.code, 0),
                "share": self.counts.get(c.code, 0) / self.rows if self.rows else 0.0,
            }
            for c in self.categories.categories
        }
        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": self.rows,
            "mean_confidence": self.confidence_sum / self.rows if self.rows else None,
            "counts": counts,
            "degraded_rows": {
                "missing_image": len(self.missing_image),
                "unreadable_image": len(self.unreadable_image),
                "empty_text": len(self.empty_text),
            },
            "missing_image": self.missing_image,
            "unreadable_image": self.unreadable_image,
            "empty_text": self.empty_text,
            **extra,
        }
