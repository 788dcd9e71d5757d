"""One batch-prediction run: CSV + images in, predictions CSV + summary (+ metrics) out."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rakuten_core.bundle import Bundle
from rakuten_core.errors import InvalidInputError
from rakuten_core.scoring import classification_metrics
from rakuten_predict.engine import DEFAULT_DECODE_TIMEOUT_S, predict_batches
from rakuten_predict.output import PredictionWriter
from rakuten_predict.reader import ProductCsv, batched, read_labels
from rakuten_predict.summary import SummaryBuilder

logger = logging.getLogger(__name__)


def default_workers() -> int:
    """Decode processes: one per core, at least 2 (decoding waits on I/O too), at most 8."""
    return max(2, min(8, os.cpu_count() or 1))


def cpu_seconds() -> float:
    """CPU of this process (all its threads) and of its ended children (the decode processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass(frozen=True)
class RunConfig:
    csv: Path
    images: Path
    out: Path
    batch_size: int = 256
    workers: int = 0  # 0 = default_workers()
    prefetch: int = 2
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S
    labels: Path | None = None
    progress: bool = True


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class CheckedInputs:
    """What the validation pass learnt: the row count and the labels, if any."""

    rows: int
    labels: dict[int, int] | None


def check_inputs(config: RunConfig) -> CheckedInputs:
    """Validate everything cheap before any model work: a bad file fails in a second, not later.

    The CSV is read once in full (streaming, nothing kept) so a malformed record anywhere fails
    with its line number; labels, when given, must cover every row's index.

    Raises:
        InvalidInputError: malformed CSV or labels, missing images folder, bad batch size.
    """
    if config.batch_size < 1:
        raise InvalidInputError("batch size must be >= 1")
    products = ProductCsv(config.csv)
    if not config.images.is_dir():
        raise InvalidInputError(f"{config.images}: images folder not found")
    rows = products.validate()
    labels = read_labels(config.labels) if config.labels else None
    if labels is not None:
        unlabelled = [r for r in products.rows() if r.index not in labels]
        if unlabelled:
            first = unlabelled[0]
            raise InvalidInputError(
                f"{config.labels}: {len(unlabelled)} row(s) of {config.csv} have no label, "
                f"first index {first.index} (line {first.line}); labels align on the index column"
            )
    return CheckedInputs(rows, labels)


def run_prediction(
    bundle: Bundle, config: RunConfig, checked: CheckedInputs | None = None
) -> dict[str, Any]:
    """Predict every row of ``config.csv``; write the predictions CSV; return the summary.

    Raises:
        InvalidInputError: as :func:`check_inputs` (called here unless ``checked`` is given).
    """
    checked = checked or check_inputs(config)
    total, labels = checked.rows, checked.labels
    products = ProductCsv(config.csv)
    workers = config.workers or default_workers()
    logger.info(
        "predicting %d rows of %s (batch %d, %d decode processes)",
        total,
        config.csv,
        config.batch_size,
        workers,
    )

    summary = SummaryBuilder(bundle.categories)
    y_true: list[int] = []
    y_pred: list[int] = []
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with (
        PredictionWriter(config.out, bundle.categories) as writer,
        tqdm(total=total, unit="row", desc="predict", disable=not config.progress) as bar,
    ):
        results = predict_batches(
            bundle,
            batched(products.rows(), config.batch_size),
            images_dir=config.images,
            workers=workers,
            prefetch=config.prefetch,
            decode_timeout_s=config.decode_timeout_s,
        )
        for result in results:
            best = writer.write(result.rows, result.probabilities)
            summary.add(result.rows, best, result.probabilities)
            if labels is not None:
                for prepared, idx in zip(result.rows, best, strict=True):
                    y_true.append(labels[prepared.row.index])
                    y_pred.append(bundle.categories.code_of(int(idx)))
            bar.update(len(result.rows))
    elapsed = time.perf_counter() - started
    cpu_used = cpu_seconds() - cpu_started  # the model and the decode pool, ended with the loop

    meta = bundle.metadata
    extra: dict[str, Any] = {
        "model": {
            "name": meta.model_name,
            "version": meta.model_version,
            "path": str(bundle.path) if bundle.path else None,
            "mlflow_run_id": meta.mlflow_run_id,
            "image_size": meta.image_size,
        },
        "inputs": {"csv": str(config.csv), "images": str(config.images), "out": str(config.out)},
        "throughput": {
            "seconds": round(elapsed, 3),
            "rows_per_second": round(total / elapsed, 1) if elapsed > 0 else None,
            "cpu_seconds": round(cpu_used, 3),
            "batch_size": config.batch_size,
            "workers": workers,
        },
    }
    if labels is not None:
        extra["metrics"] = classification_metrics(y_true, y_pred, bundle.categories)
    return summary.build(**extra)
