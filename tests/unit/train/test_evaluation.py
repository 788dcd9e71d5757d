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
from rakuten_train.reports import REPORT_FILES, write_reports
from rakuten_train.splits import Split

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


class _Recording:
    """A :class:`rakuten_core.bundle.ProbabilityModel` that keeps every batch it is fed and
    answers class 0 for a product with an image, else class 1 when it has text, else class 2."""

    name = "recording"

    def __init__(self) -> None:
        self.batches: list[dict[str, np.ndarray]] = []

    def predict_proba(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.batches.append({k: np.array(v, copy=True) for k, v in inputs.items()})
        texts = np.asarray(inputs["text"]).reshape(-1)
        has = np.asarray(inputs["has_image"]).reshape(-1)
        answer = [0 if h else (1 if str(t) else 2) for t, h in zip(texts, has, strict=True)]
        return np.eye(27, dtype=np.float32)[answer]


def test_each_modality_feeds_the_inputs_serving_builds_and_images_are_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    import rakuten_train.splits as splits

    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (20, 10), (200, 40 * i, 0)).save(path)
        paths.append(str(path))
    split = Split(
        texts=np.asarray(["a", "b", "c"], dtype=object),
        image_paths=np.asarray([*paths, ""], dtype=object),  # the third has no image
        labels=np.asarray([0, 0, 1], dtype=np.int64),
    )
    decoded: list[str] = []
    real = splits.decode_or_blank

    def counting(path: str, size: int) -> tuple[np.ndarray, float]:
        decoded.append(path)
        return real(path, size)

    monkeypatch.setattr(splits, "decode_or_blank", counting)
    model = _Recording()

    evaluation = evaluate_model(model, split, INDEX, image_size=8, batch_size=2)

    assert sorted(decoded) == sorted([*paths, ""])  # once per row, for every modality
    fused, text_only, image_only = model.batches[0:2], model.batches[2:4], model.batches[4:6]
    assert len(model.batches) == 6  # 3 modalities x batches of 2 + 1
    assert [b["text"].reshape(-1).tolist() for b in fused] == [["a", "b"], ["c"]]
    assert [b["has_image"].reshape(-1).tolist() for b in fused] == [[1.0, 1.0], [0.0]]
    assert fused[0]["image"].shape == (2, 8, 8, 3) and fused[0]["image"].any()
    assert not fused[1]["image"].any()  # the missing image is the blank one
    assert all(not b["has_image"].any() and not b["image"].any() for b in text_only)
    assert [b["text"].reshape(-1).tolist() for b in image_only] == [["", ""], [""]]
    assert [b["has_image"].reshape(-1).tolist() for b in image_only] == [[1.0, 1.0], [0.0]]
    # fused answers 0, 0, 1 = the labels; text-only answers 1 everywhere; image-only 0, 0, 2
    assert evaluation.metrics.weighted_f1 == pytest.approx(1.0)
    assert evaluation.probs["text_only"].argmax(axis=1).tolist() == [1, 1, 1]
    assert evaluation.probs["image_only"].argmax(axis=1).tolist() == [0, 0, 2]
    no_image = evaluation.reference.features["no_image"]
    assert (no_image.labels, no_image.counts) == (["false", "true"], [2, 1])  # the decoded two
