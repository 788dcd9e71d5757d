"""``prepare --feedback``: the feedback slice's training rows, for train and val only.

The test split is computed from ``data/raw`` alone, exactly as without feedback, so models
trained before and after a batch of feedback are scored on the same rows. The slice's
``train/`` folder is a raw directory and goes through the same reading and checks as
``data/raw`` (every issue is reported with a ``feedback_`` prefix; errors stop preparation).
Then:

- a feedback row describing a product of the test split (same ``productid``, or same
  designation and description) is dropped, so the fixed test split is never trained on;
- a feedback row relabelling a raw train/val product is kept beside it and reported;
- the rest is split train/val with the stratified split (test share 0) and joins those splits.

Image paths stay relative to the raw directory (``../feedback/train/images/...`` for the
default layout), as :mod:`rakuten_core.dataset` states for every prepared table.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rakuten_core import dataset
from rakuten_core.text import product_text
from rakuten_data import validate
from rakuten_data.feedback_slice import TRAIN_DIR, read_manifest
from rakuten_data.images import check_images
from rakuten_data.report import FeedbackSummary, FileDigest, Issue, issue
from rakuten_data.split import stratified_split
from rakuten_data.tables import read_table


@dataclass(frozen=True)
class FeedbackRows:
    """Feedback rows ready to join the raw rows (raw frame columns + image_path + text)."""

    train: pd.DataFrame
    val: pd.DataFrame
    inputs: list[FileDigest]
    images_sha256: str
    summary: FeedbackSummary


def _prefixed(found: list[Issue]) -> list[Issue]:
    return [i.model_copy(update={"code": f"feedback_{i.code}"}) for i in found]


def _in_test(fb: pd.DataFrame, test: pd.DataFrame) -> pd.Series:
    texts = set(zip(test["designation"], test["description"], strict=True))
    same_text = pd.Series(
        [(d, b) in texts for d, b in zip(fb["designation"], fb["description"], strict=True)],
        index=fb.index,
    )
    return fb["productid"].isin(set(test["productid"])) | same_text


def _relabels(fb: pd.DataFrame, trainval: pd.DataFrame) -> pd.Series:
    codes = dict(zip(trainval["productid"], trainval[dataset.LABEL_COLUMN], strict=False))
    return pd.Series(
        [
            p in codes and codes[p] != c
            for p, c in zip(fb["productid"], fb[dataset.LABEL_COLUMN], strict=True)
        ],
        index=fb.index,
    )


def load_feedback(
    feedback: Path,
    raw: Path,
    *,
    test: pd.DataFrame,
    trainval: pd.DataFrame,
    val_size: float,
    seed: int,
    issues: list[Issue],
    workers: int = 2,
) -> FeedbackRows | None:
    """The slice's rows for train and val; ``None`` when there is no feedback.

    ``test`` and ``trainval`` are the raw rows of those splits (ids, texts, labels). Error-level
    issues are appended to ``issues`` (the caller stops on them).
    """
    manifest = read_manifest(feedback)
    if manifest is None or manifest.train.rows == 0:
        return None
    folder = feedback / TRAIN_DIR
    found: list[Issue] = []
    x, x_digest = read_table(
        folder / dataset.X_TRAIN_FILE, columns=dataset.RAW_TEXT_COLUMNS, issues=found
    )
    y, y_digest = read_table(
        folder / dataset.Y_TRAIN_FILE, columns=(dataset.LABEL_COLUMN,), issues=found
    )
    if x is not None:
        x = validate.check_products(x, found)
    codes = validate.check_labels(y, found) if y is not None else None
    if x is not None and y is not None:
        validate.check_alignment(x, y, found)
    if x is None or codes is None or any(i.severity == "error" for i in found):
        issues.extend(_prefixed(found))
        return None
    frame = x.assign(**{dataset.LABEL_COLUMN: codes.reindex(x.index)})
    validate.check_duplicates(frame, found)
    in_test = _in_test(frame, test)
    if in_test.any():
        found.append(
            issue(
                "in_test_split",
                f"{int(in_test.sum())} feedback rows describe products of the fixed test "
                "split; dropped (the test split is never trained on)",
                count=int(in_test.sum()),
                examples=[f"row {i}" for i in frame.index[in_test]],
            )
        )
    frame = frame[~in_test]
    relabel = _relabels(frame, trainval)
    if relabel.any():
        found.append(
            issue(
                "relabels_raw",
                f"{int(relabel.sum())} feedback rows give another code to a raw training "
                "product; both rows are kept",
                count=int(relabel.sum()),
                examples=[str(p) for p in frame["productid"][relabel]],
            )
        )
    paths, images, image_issues = check_images(folder, frame, workers=workers, progress=False)
    found.extend(image_issues)
    prefix = Path(os.path.relpath(folder, raw)).as_posix()
    frame = frame.assign(
        image_path=[f"{prefix}/{p}" if p else "" for p in paths],
        text=[
            product_text(d, b)
            for d, b in zip(frame["designation"], frame["description"], strict=True)
        ],
    )
    frame = frame[(frame["text"] != "") | (frame["image_path"] != "")]
    issues.extend(_prefixed(found))
    positions = stratified_split(
        frame[dataset.LABEL_COLUMN].to_numpy(), val_size=val_size, test_size=0.0, seed=seed
    )
    train, val = frame.iloc[positions["train"]], frame.iloc[positions["val"]]
    digests = [
        d.model_copy(update={"path": f"feedback/{d.path}"})
        for d in (x_digest, y_digest)
        if d is not None
    ]
    summary = FeedbackSummary(
        dir=feedback.as_posix(),
        slice_id=manifest.slice_id,
        slice_rows=manifest.train.rows,
        dropped_in_test=int(in_test.sum()),
        train=len(train),
        val=len(val),
        images_sha256=images.sha256,
    )
    combined = hashlib.sha256(f"{images.sha256}\n{manifest.slice_id}".encode()).hexdigest()
    return FeedbackRows(train, val, digests, combined, summary)
