"""The monitor's Prometheus metrics, defined once and registered on the monitor's own registry.

Gauges are produced at scrape time from the latest :class:`Snapshot` by a custom collector, so
a figure without enough data behind it is simply not exported (absent, never 0):

- ``rakuten_drift_score{feature}``: noise-corrected drift score (:mod:`rakuten_core.drift_stats`);
  absent for a feature with fewer than ``RAKUTEN_MONITOR_MIN_PREDICTIONS`` values in the window
  or when the bundle has no reference;
- ``rakuten_drift_threshold{feature}``: the score above which the feature counts as drifted
  (constants of :data:`rakuten_core.drift.FEATURES`), exported for every feature;
- ``rakuten_drift_window_predictions``, ``rakuten_live_feedback_window``: rows in the window
  (true counts, 0 included), after the first successful read of the database;
- ``rakuten_live_accuracy``, ``rakuten_live_weighted_f1``: over the window's feedback; absent
  below ``RAKUTEN_MONITOR_MIN_FEEDBACK`` rows;
- ``rakuten_live_class_recall{prdtypecode}``, ``rakuten_live_class_feedback_window{prdtypecode}``:
  per true class of that feedback, the share the model predicted right and the rows behind it
  (only classes with feedback; absent below the same minimum);
- ``rakuten_shadow_window_predictions{challenger_version}``,
  ``rakuten_shadow_feedback_window{challenger_version}``: requests scored in shadow by the
  current challenger in the window, and feedback rows on them (when serve runs a challenger);
- ``rakuten_shadow_agreement{challenger_version}``: share of them where the challenger agreed
  with the champion; absent below ``RAKUTEN_MONITOR_MIN_PREDICTIONS`` rows;
- ``rakuten_shadow_live_accuracy{role, challenger_version}``: accuracy of the champion and of
  the challenger on the same feedback; absent below ``RAKUTEN_MONITOR_MIN_FEEDBACK`` rows;
- ``rakuten_monitor_last_success_timestamp_seconds``: end of the last fully successful run;
- ``rakuten_monitor_runs_total{outcome}``: runs by outcome, ``success`` or ``error`` (database
  unreachable, bundle or reference unreadable);
- ``rakuten_monitor_notifications_total{kind}``: Alertmanager notifications received by the
  notification log (:mod:`rakuten_monitor.notifications`): ``firing``, ``resolved``,
  ``heartbeat``; only when the log is on (``RAKUTEN_MONITOR_NOTIFICATIONS_TOKEN_FILE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rakuten_core.drift import FEATURES
from rakuten_monitor.shadow import ShadowFigures
from rakuten_monitor.snapshot import Snapshot

OUTCOMES = ("success", "error")
NOTIFICATION_KINDS = ("firing", "resolved", "heartbeat")


class SnapshotCollector(Collector):
    """Yields the gauges of the latest snapshot (see the module docstring)."""

    def __init__(
        self, snapshot: Callable[[], Snapshot | None], last_success: Callable[[], float | None]
    ) -> None:
        self._snapshot = snapshot
        self._last_success = last_success

    def collect(self) -> Iterator[GaugeMetricFamily]:
        threshold = GaugeMetricFamily(
            "rakuten_drift_threshold",
            "Drift score above which a feature counts as drifted.",
            labels=["feature"],
        )
        for spec in FEATURES:
            threshold.add_metric([spec.name], spec.threshold)
        yield threshold
        last = self._last_success()
        if last is not None:
            yield GaugeMetricFamily(
                "rakuten_monitor_last_success_timestamp_seconds",
                "Unix time of the end of the last successful monitor run.",
                value=last,
            )
        snap = self._snapshot()
        if snap is None:
            return
        score = GaugeMetricFamily(
            "rakuten_drift_score",
            "Noise-corrected drift score of a feature over the recent window vs the reference.",
            labels=["feature"],
        )
        for name, result in snap.drift.items():
            score.add_metric([name], result.score)
        if snap.drift:
            yield score
        yield GaugeMetricFamily(
            "rakuten_drift_window_predictions",
            "Predictions in the compared window.",
            value=snap.window_predictions,
        )
        yield GaugeMetricFamily(
            "rakuten_live_feedback_window",
            "Feedback rows in the live quality window.",
            value=snap.feedback,
        )
        if snap.accuracy is not None:
            yield GaugeMetricFamily(
                "rakuten_live_accuracy",
                "Share of correct predictions among the window's feedback.",
                value=snap.accuracy,
            )
        if snap.weighted_f1 is not None:
            yield GaugeMetricFamily(
                "rakuten_live_weighted_f1",
                "Weighted F1 of the window's feedback (true vs predicted codes).",
                value=snap.weighted_f1,
            )
        if snap.class_recall:
            yield from _class_gauges(snap.class_recall)
        if snap.shadow is not None:
            yield from _shadow_gauges(snap.shadow)


def _class_gauges(class_recall: dict[int, tuple[float, int]]) -> Iterator[GaugeMetricFamily]:
    """Recall per true class over the quality window, with the feedback rows behind each."""
    recall = GaugeMetricFamily(
        "rakuten_live_class_recall",
        "Share of the window's feedback of this true class that the model predicted right.",
        labels=["prdtypecode"],
    )
    rows = GaugeMetricFamily(
        "rakuten_live_class_feedback_window",
        "Feedback rows of this true class in the live quality window.",
        labels=["prdtypecode"],
    )
    for code, (value, support) in sorted(class_recall.items()):
        recall.add_metric([str(code)], value)
        rows.add_metric([str(code)], support)
    yield recall
    yield rows


def _shadow_gauges(shadow: ShadowFigures) -> Iterator[GaugeMetricFamily]:
    """Champion vs challenger over the current challenger's shadow window."""
    version = [shadow.challenger_version]
    counts = (
        (
            "rakuten_shadow_window_predictions",
            "Requests scored in shadow in the window.",
            shadow.predictions,
        ),
        ("rakuten_shadow_feedback_window", "Feedback rows on those requests.", shadow.feedback),
    )
    for name, documentation, value in counts:
        family = GaugeMetricFamily(name, documentation, labels=["challenger_version"])
        family.add_metric(version, value)
        yield family
    if shadow.agreement is not None:
        family = GaugeMetricFamily(
            "rakuten_shadow_agreement",
            "Share of shadowed requests where the challenger predicted the champion's code.",
            labels=["challenger_version"],
        )
        family.add_metric(version, shadow.agreement)
        yield family
    if shadow.champion_accuracy is not None and shadow.challenger_accuracy is not None:
        family = GaugeMetricFamily(
            "rakuten_shadow_live_accuracy",
            "Accuracy on the feedback of the shadowed requests, per model (role).",
            labels=["role", "challenger_version"],
        )
        family.add_metric(["champion", *version], shadow.champion_accuracy)
        family.add_metric(["challenger", *version], shadow.challenger_accuracy)
        yield family


def build_registry(
    snapshot: Callable[[], Snapshot | None], last_success: Callable[[], float | None]
) -> tuple[CollectorRegistry, Counter]:
    """A registry with the snapshot gauges and the runs counter (both outcomes at 0)."""
    registry = CollectorRegistry(auto_describe=True)
    runs = Counter(
        "rakuten_monitor_runs",
        "Monitor runs by outcome.",
        labelnames=["outcome"],
        registry=registry,
    )
    for outcome in OUTCOMES:
        runs.labels(outcome=outcome)
    registry.register(SnapshotCollector(snapshot, last_success))
    return registry, runs


def notification_counter(registry: CollectorRegistry) -> Counter:
    """The notification log's counter on the monitor's registry (every kind at 0)."""
    counter = Counter(
        "rakuten_monitor_notifications",
        "Alertmanager notifications received by the monitor's notification log, by kind.",
        labelnames=["kind"],
        registry=registry,
    )
    for kind in NOTIFICATION_KINDS:
        counter.labels(kind=kind)
    return counter
