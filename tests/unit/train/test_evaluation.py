"""Metrics, report files and the promotion rule, on hand-checkable predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rakuten_core.bundle_fields import HeldOutMetrics
from rakuten_core.categories import CATEGORIES, CODES, CategoryIndex
from rakuten_core.drift import build_reference
from rakuten_core.errors import DataValidationError
from rakuten_core.scoring import classification_metrics, codes_of, modality_metrics
from rakuten_train.evaluation import Evaluation, evaluate_model, scores
from rakuten_train.pipeline import Split
from rakuten_train.reports import REPORT_FILES, write_reports

INDEX = CategoryIndex(CATEGORIES)


def test_scores_take_class_indices_and_score_their_codes() -> None:
    # indices 0, 1 are codes 10, 40 in the default order: the shared scoring on codes
    s = scores(np.asarray([0, 0, 0, 1]), np.asarray([0, 0, 1, 0]), INDEX)
    assert s == classification_metrics([10, 10, 10, 40], [10, 10, 40, 10], INDEX)
    assert len(s["per_class"]) == 27 and s["per_class"][0]["support"] == 3


def test_an_empty_test_split_is_a_data_error_not_a_zero_score() -> None:
    empty = Split(
        texts=np.asarray([], dtype=object),
        image_paths=np.asarray([], dtype=object),
        labels=np.asarray([], dtype=np.int64),
    )
    with pytest.raises(DataValidationError, match="test split is empty"):
        evaluate_model(None, empty, INDEX, image_size=8)


def _evaluation() -> Evaluation:
    y = np.asarray([0, 1, 2, 2], dtype=np.int64)
    fused = np.eye(27, dtype=np.float32)[[0, 1, 2, 0]]
    text = np.eye(27, dtype=np.float32)[[0, 1, 1, 1]]
    image = np.eye(27, dtype=np.float32)[[3, 3, 3, 3]]
    probs = {"fused": fused, "text_only": text, "image_only": image}
    predicted = {m: codes_of(p.argmax(axis=1), INDEX) for m, p in probs.items()}
    metrics = modality_metrics(codes_of(y, INDEX), predicted, INDEX)  # as evaluate_model
    return Evaluation(
        metrics=HeldOutMetrics.model_validate(metrics),
        y_true=y,
        probs=probs,
        reference=build_reference([], codes=CODES),
    )


def test_reports_hold_the_metrics_confusion_and_per_class_scores(tmp_path: Path) -> None:
    out = write_reports(_evaluation(), INDEX, tmp_path / "reports")
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weighted_f1"] == pytest.approx(0.75, abs=1e-5)
    with (out / "confusion_matrix.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][1:4] == ["10", "40", "50"] and len(rows) == 28
    matrix = np.asarray([[int(v) for v in r[1:]] for r in rows[1:]])
    assert matrix.sum() == 4 and matrix[2, 0] == 1 and matrix[2, 2] == 1 and matrix[0, 0] == 1
    with (out / "per_class.csv").open() as fh:
        per_class = {r["code"]: r for r in csv.DictReader(fh)}
    assert float(per_class["50"]["f1"]) == pytest.approx(2 / 3, abs=1e-5)
    assert float(per_class["50"]["text_only_f1"]) == 0.0
    assert per_class["50"]["support"] == "2"
    with (out / "predictions.csv").open() as fh:
        assert list(csv.reader(fh))[1:] == [["10", "10"], ["40", "40"], ["50", "50"], ["50", "10"]]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rewriting_reports_leaves_a_hardlinked_copy_alone(tmp_path: Path) -> None:
    # DVC's cache (cache.type hardlink) shares the inode of reports/*: a second evaluation must
    # replace the files, not write into them, or the cached version would change with them
    out = write_reports(_evaluation(), INDEX, tmp_path / "reports")
    cache = tmp_path / "cache"
    cache.mkdir()
    before = {}
    for name in REPORT_FILES:
        (cache / name).hardlink_to(out / name)
        before[name] = (cache / name).read_bytes()
    changed = _evaluation()
    changed.metrics.weighted_f1 = 0.123
    write_reports(changed, INDEX, out)
    assert json.loads((out / "metrics.json").read_text())["weighted_f1"] == 0.123
    for name in REPORT_FILES:
        assert (cache / name).read_bytes() == before[name], name
        assert (cache / name).stat().st_ino != (out / name).stat().st_ino
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)  # no staging left
