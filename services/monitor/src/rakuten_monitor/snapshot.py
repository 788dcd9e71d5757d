"""One evaluation of the recent window: drift per feature and live quality.

Everything is computed by the shared contract (:mod:`rakuten_core.drift`,
:mod:`rakuten_core.drift_stats`, :mod:`rakuten_core.scoring`), so the monitor's figures are
the ones evaluation and batch scoring would give on the same rows. A figure without enough data
behind it is left out (``None`` or missing from ``drift``), never reported as 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rakuten_core.categories import CategoryIndex
from rakuten_core.drift import FEATURES, feature_values
from rakuten_core.drift_stats import DriftResult, compare
from rakuten_core.scoring import classification_metrics
from rakuten_monitor.reference import ModelReference
from rakuten_monitor.shadow import ShadowFigures
from rakuten_monitor.window import Window


@dataclass(frozen=True)
class Snapshot:
    """What one run found; the gauges and the report are drawn from it."""

    taken_at: float
    window_predictions: int
    feedback: int
    min_predictions: int
    min_feedback: int
    drift: dict[str, DriftResult] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)  # feature -> values in the window
    accuracy: float | None = None
    weighted_f1: float | None = None
    # true prdtypecode -> (recall, feedback rows of that class), classes with feedback only
    class_recall: dict[int, tuple[float, int]] = field(default_factory=dict)
    model: str | None = None
    reference_error: str | None = None
    shadow: ShadowFigures | None = None  # champion vs challenger, when serve runs one in shadow


def take_snapshot(
    window: Window,
    reference: ModelReference | None,
    *,
    min_predictions: int,
    min_feedback: int,
    reference_error: str | None = None,
) -> Snapshot:
    """Drift of ``window`` against ``reference`` (skipped without one) and live quality.

    A feature gets a score only when the window holds at least ``min_predictions`` values of
    it (image brightness counts products with an image only); accuracy and weighted F1 only
    with at least ``min_feedback`` feedback rows, and so does the recall of each true class
    found in that feedback (with its row count: a class seen 3 times has a coarse recall).
    """
    values = feature_values(window.predictions)
    drift: dict[str, DriftResult] = {}
    if reference is not None:
        for spec in FEATURES:
            feature_ref = reference.drift.features.get(spec.name)
            if feature_ref is None:
                continue
            result = compare(spec, feature_ref, values[spec.name], min_count=min_predictions)
            if result is not None:
                drift[spec.name] = result
    accuracy = weighted_f1 = None
    class_recall: dict[int, tuple[float, int]] = {}
    if window.feedback >= min_feedback:
        categories = reference.categories if reference is not None else CategoryIndex()
        scores = classification_metrics(window.true_codes, window.predicted_codes, categories)
        accuracy = float(scores["accuracy"])
        weighted_f1 = float(scores["weighted_f1"])
        class_recall = {
            int(c["code"]): (float(c["recall"]), int(c["support"]))
            for c in scores["per_class"]
            if c["support"] > 0
        }
    return Snapshot(
        taken_at=time.time(),
        window_predictions=len(window.predictions),
        feedback=window.feedback,
        min_predictions=min_predictions,
        min_feedback=min_feedback,
        drift=drift,
        values={name: len(v) for name, v in values.items()},
        accuracy=accuracy,
        weighted_f1=weighted_f1,
        class_recall=class_recall,
        model=f"{reference.model_name} {reference.model_version}" if reference else None,
        reference_error=reference_error,
    )
