"""One training run: prepared splits -> fitted model -> test evaluation -> bundle, reports, MLflow.

``train`` fits on ``train``, early-stops on ``val`` and evaluates once on the held-out ``test``
split. Seeds are fixed (``keras.utils.set_random_seed``) and TensorFlow op determinism is on
unless ``deterministic: false``. Class imbalance: per-example loss weights from
:func:`rakuten_train.pipeline.class_weights` (``sqrt_balanced`` by default).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import mlflow
import tensorflow as tf

from rakuten_core.bundle import BundleMetadata
from rakuten_core.bundle_fields import HeldOutMetrics, TextSettings
from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.dataset import REPORT_FILE
from rakuten_core.job_stamp import JobStamp, clear_stamp, write_stamp
from rakuten_train import tracking
from rakuten_train.evaluation import Evaluation, bundle_f1, evaluate_model
from rakuten_train.export.bundle import stage_bundle
from rakuten_train.gate_params import GateParams
from rakuten_train.model import build_model, compile_model
from rakuten_train.params import TrainParams
from rakuten_train.pipeline import class_weights, make_dataset
from rakuten_train.reports import write_reports
from rakuten_train.reuse import train_stamp
from rakuten_train.splits import load_split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    metrics: HeldOutMetrics
    run_id: str
    promotion: tracking.Promotion | None
    epochs_run: int
    seconds: float
    train_rows: int
    model_name: str
    model_version: str
    stamp: JobStamp


def seed_everything(params: TrainParams) -> None:
    keras.utils.set_random_seed(params.seed)
    if params.deterministic:
        tf.config.experimental.enable_op_determinism()


def data_fingerprint(processed: Path) -> str:
    """The ``fingerprint`` of ``data_report.json`` written by ``rakuten-data prepare``."""
    try:
        report = json.loads((processed / REPORT_FILE).read_text(encoding="utf-8"))
        return str(report.get("fingerprint", ""))
    except (OSError, json.JSONDecodeError):
        return ""


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def train(
    *,
    data: Path,
    raw: Path,
    params: TrainParams,
    bundle_out: Path,
    reports: Path,
    experiment: str = "rakuten-train",
    register: bool = True,
    tracking_uri: str | None = None,
    track: bool = True,
    verbose: int = 2,
    gate: GateParams | None = None,
) -> TrainResult:
    """Run the whole training job; see the module docstring.

    ``track=False`` skips MLflow entirely (no run, no registry): for test fixtures that only need
    a bundle. ``register`` is ignored then. ``gate`` holds the promotion margin (``gate:`` of
    params.yaml). Whether to train at all is :mod:`rakuten_train.reuse`'s question (the CLI's
    ``--reuse``); this always trains, and stamps the bundle (:func:`train_stamp`).
    """
    start = time.perf_counter()
    stamp = train_stamp(data=data, raw=raw, params=params)
    clear_stamp(bundle_out)
    seed_everything(params)
    categories = CategoryIndex(CATEGORIES)
    train_split, val_split, test_split = (
        load_split(data, name, raw, categories) for name in ("train", "val", "test")
    )
    fingerprint = data_fingerprint(data)
    commit = git_commit()
    logger.info(
        "training on %d rows, validating on %d, testing on %d (data %s)",
        len(train_split),
        len(val_split),
        len(test_split),
        fingerprint[:12] or "?",
    )

    model = build_model(params, train_split.texts.tolist(), len(categories))
    compile_model(model, params)
    weights = class_weights(train_split.labels, len(categories), params.class_weight)
    train_ds = make_dataset(
        train_split,
        shuffle=True,
        seed=params.seed,
        cache=params.cache_images,
        sample_weights=weights[train_split.labels],
        image_size=params.image_size,
        batch_size=params.batch_size,
    )
    val_ds = make_dataset(
        val_split,
        cache=params.cache_images,
        image_size=params.image_size,
        batch_size=params.batch_size,
    )

    experiment_id = tracking.setup(tracking.tracking_uri(tracking_uri), experiment) if track else ""
    # The experiment id is passed explicitly: a bare start_run() would use MLflow's "Default"
    # experiment (artifacts in ./mlruns of the working directory), whatever setup() created.
    run_context = mlflow.start_run(experiment_id=experiment_id) if track else None
    with run_context or contextlib.nullcontext() as run:
        run_id = run.info.run_id if run is not None else ""
        _log = mlflow if track else _NoTracking()
        _log.log_params(params.flat())
        _log.set_tags(
            {
                "data_fingerprint": fingerprint,
                "git_commit": commit or "unknown",
                "rows.train": len(train_split),
                "rows.val": len(val_split),
                "rows.test": len(test_split),
                "class_weights": json.dumps([round(float(w), 4) for w in weights]),
            }
        )
        callbacks: list[keras.callbacks.Callback] = [tracking.MlflowEpochLogger()] if track else []
        if params.early_stopping_patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=params.early_stopping_patience,
                    restore_best_weights=True,
                )
            )
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=params.epochs,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=verbose,
        )
        epochs_run = len(history.history.get("loss", []))

        # the export is staged, checked against the model, and evaluated: the figures are the
        # served model's (the evaluate command and the gate score a saved bundle the same way)
        with stage_bundle(model, params.image_size, near=bundle_out) as staged:
            evaluation = evaluate_model(
                staged.runtime(), test_split, categories, image_size=params.image_size
            )
            write_reports(evaluation, categories, reports)
            metadata = _metadata(params, evaluation, fingerprint, commit, run_id)
            staged.save(bundle_out, metadata)
        _log.log_metrics(_summary(evaluation.metrics))
        _log.log_metric("epochs_run", epochs_run)
        promotion = None
        if track:
            mlflow.log_artifacts(str(reports), artifact_path="reports")
            model_uri = tracking.log_bundle_model(bundle_out)
            mlflow.set_tag("model_uri", model_uri)  # what `rakuten-train register` registers
        if track and register:
            promotion = tracking.register_and_promote(
                model_uri,
                name=params.registry.model_name,
                new_f1=evaluation.metrics.weighted_f1,
                test_rows=len(test_split),
                gate=gate or GateParams(),
                fingerprint=stamp.fingerprint,
                champion_score=lambda path: bundle_f1(path, test_split),
            )
            mlflow.set_tags(
                {
                    "registry.version": promotion.version,
                    "registry.promoted": str(promotion.promoted).lower(),
                    "registry.reason": promotion.reason,
                }
            )
            if promotion.champion_weighted_f1 is not None:
                mlflow.log_metric("champion_weighted_f1", promotion.champion_weighted_f1)
    write_stamp(bundle_out, stamp)
    return TrainResult(
        bundle_out,
        evaluation.metrics,
        run_id,
        promotion,
        epochs_run,
        time.perf_counter() - start,
        train_rows=len(train_split),
        model_name=metadata.model_name,
        model_version=metadata.model_version,
        stamp=stamp,
    )


class _NoTracking:
    """Stands in for the ``mlflow`` module when tracking is off: every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _summary(metrics: HeldOutMetrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for modality, values in metrics.modalities.items():
        out[f"test_{modality}_weighted_f1"] = values.weighted_f1
        out[f"test_{modality}_macro_f1"] = values.macro_f1
        out[f"test_{modality}_accuracy"] = values.accuracy
    out["test_weighted_f1"] = metrics.weighted_f1
    return out


def _metadata(
    params: TrainParams,
    evaluation: Evaluation,
    fingerprint: str,
    commit: str | None,
    run_id: str,
) -> BundleMetadata:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return BundleMetadata(
        model_version=f"{stamp}-{run_id[:8]}",
        categories=list(CATEGORIES),
        image_size=params.image_size,
        text=TextSettings(
            input="rakuten_core.text.product_text(designation, description)",
            normalizer="rakuten_train.layers.TextNormalizer (Unicode lower, punctuation)",
            sequence_length=params.text.sequence_length,
            word_ngrams=params.text.word_ngrams,
            char_ngrams=(params.text.char_ngram_min, params.text.char_ngram_max),
        ),
        params=params.model_dump(mode="json"),
        metrics=evaluation.metrics,
        data_fingerprint=fingerprint,
        reference=evaluation.reference,
        git_commit=commit,
        mlflow_run_id=run_id,
    )
