"""Per-class recall from the feedback window: what the quality dashboard's recall panel reads."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from rakuten_monitor.metrics import build_registry
from rakuten_monitor.snapshot import Snapshot, take_snapshot
from rakuten_monitor.window import Window
from tests.utils.monitor import parse_metrics


def _samples(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry, _ = build_registry(lambda: snapshot, lambda: None)
    return parse_metrics(generate_latest(registry).decode())


def _window(pairs: list[tuple[int, int]]) -> Window:
    return Window(
        predictions=[],
        true_codes=[true for true, _ in pairs],
        predicted_codes=[predicted for _, predicted in pairs],
    )


def test_recall_per_true_class_with_its_rows() -> None:
    # 10: 3 of 4 right; 40: 0 of 2 (both called 10); 2583: 1 of 1
    pairs = [(10, 10)] * 3 + [(10, 2583), (40, 10), (40, 10), (2583, 2583)]
    snapshot = take_snapshot(_window(pairs), None, min_predictions=1, min_feedback=5)
    samples = _samples(snapshot)
    recall = {
        dict(labels)["prdtypecode"]: value
        for (name, labels), value in samples.items()
        if name == "rakuten_live_class_recall"
    }
    rows = {
        dict(labels)["prdtypecode"]: value
        for (name, labels), value in samples.items()
        if name == "rakuten_live_class_feedback_window"
    }
    assert recall == {"10": pytest.approx(0.75), "40": 0.0, "2583": 1.0}
    assert rows == {"10": 4, "40": 2, "2583": 1}  # only the classes users answered about
    # the share of each class's rows predicted right, weighted by rows, is the accuracy
    accuracy = samples[("rakuten_live_accuracy", ())]
    assert sum(recall[c] * rows[c] for c in rows) / sum(rows.values()) == pytest.approx(accuracy)


def test_no_recall_below_the_minimum_feedback() -> None:
    snapshot = take_snapshot(_window([(10, 10)] * 4), None, min_predictions=1, min_feedback=5)
    names = {name for name, _ in _samples(snapshot)}
    assert snapshot.class_recall == {}
    assert not names & {"rakuten_live_class_recall", "rakuten_live_class_feedback_window"}
    assert "rakuten_live_accuracy" not in names
