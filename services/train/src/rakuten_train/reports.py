"""Report files for DVC (metrics and plots) and MLflow artifacts.

::

    reports/metrics.json            summary + per-modality metrics with per-class scores
    reports/per_class.csv           code,name,precision,recall,f1,support,text_only_f1,image_only_f1
    reports/confusion_matrix.csv    square matrix, rows = true code, columns = predicted code
    reports/confusion_matrix.png    the same, row-normalised, as a heat map
    reports/predictions.csv         actual,predicted codes per test row (DVC confusion plot)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rakuten_core.categories import CategoryIndex
from rakuten_core.scoring import codes_of, confusion
from rakuten_train.evaluation import Evaluation

REPORT_FILES = (
    "metrics.json",
    "per_class.csv",
    "confusion_matrix.csv",
    "confusion_matrix.png",
    "predictions.csv",
)


def write_reports(evaluation: Evaluation, categories: CategoryIndex, out: str | Path) -> Path:
    """Write every report file into ``out`` (created) and return it.

    Each file is written beside its target and renamed over it, never rewritten in place: with
    DVC's hardlinked cache (``.dvc/config``) the file in ``reports/`` is the cache's own copy, and
    writing into it would change a cached version behind DVC's back.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".reports-", dir=folder))
    try:
        _write_all(evaluation, categories, staging)
        for name in REPORT_FILES:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_all(evaluation: Evaluation, categories: CategoryIndex, folder: Path) -> None:
    metrics = evaluation.metrics
    (folder / "metrics.json").write_text(
        json.dumps(metrics.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
    )

    modalities = metrics.modalities
    with (folder / "per_class.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "code",
                "name",
                "precision",
                "recall",
                "f1",
                "support",
                "text_only_f1",
                "image_only_f1",
            ]
        )
        for fused, text, image in zip(
            modalities["fused"].per_class,
            modalities["text_only"].per_class,
            modalities["image_only"].per_class,
            strict=True,
        ):
            writer.writerow(
                [
                    fused.code,
                    fused.name,
                    fused.precision,
                    fused.recall,
                    fused.f1,
                    fused.support,
                    text.f1,
                    image.f1,
                ]
            )

    y_pred = evaluation.probs["fused"].argmax(axis=1)
    matrix = confusion(
        codes_of(evaluation.y_true, categories), codes_of(y_pred, categories), categories
    )
    codes = [categories.code_of(i) for i in range(len(categories))]
    with (folder / "confusion_matrix.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true\\predicted", *codes])
        for code, row in zip(codes, matrix, strict=True):
            writer.writerow([code, *(int(v) for v in row)])
    with (folder / "predictions.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        for t, p in zip(evaluation.y_true, y_pred, strict=True):
            writer.writerow([categories.code_of(int(t)), categories.code_of(int(p))])
    _plot_confusion(matrix, codes, folder / "confusion_matrix.png", metrics.weighted_f1)


def _plot_confusion(matrix: np.ndarray, codes: list[int], path: Path, wf1: float) -> None:
    import matplotlib  # noqa: PLC0415  (~1 s for one figure per evaluation; Agg before pyplot)

    matrix_f = matrix.astype(np.float64)
    rows = matrix_f.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix_f, rows, out=np.zeros_like(matrix_f), where=rows > 0)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (after matplotlib.use("Agg"))

    fig, ax = plt.subplots(figsize=(10, 9))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(codes)), [str(c) for c in codes], rotation=90, fontsize=7)
    ax.set_yticks(range(len(codes)), [str(c) for c in codes], fontsize=7)
    ax.set_xlabel("predicted prdtypecode")
    ax.set_ylabel("true prdtypecode")
    ax.set_title(f"Confusion matrix on the test split (row-normalised), weighted F1 {wf1:.3f}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
