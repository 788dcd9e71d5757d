"""``rakuten-train``: train (fit + evaluate + bundle + MLflow + registry), evaluate-only, export
(a bundle's ONNX ``serving/`` from its ``model.keras``), and
the retraining loop's register / gate / promote / report-retrain (:mod:`rakuten_train.loop_cli`).

Paths, the MLflow experiment, the registered model name and the Pushgateway come from
:class:`rakuten_train.settings.TrainSettings` (``RAKUTEN_*`` variables or ``.env``); a flag given
on the command line wins. Each run pushes its figures to the Pushgateway when one is configured
(:mod:`rakuten_core.job_metrics`).

Exit codes: 0 success, 1 runtime failure, 2 bad input (missing data, invalid params or settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from rakuten_core.bundle import read_metadata
from rakuten_core.errors import DataValidationError, ModelUnavailableError
from rakuten_core.job_metrics import JOB_EVALUATE, JOB_TRAIN, job_run
from rakuten_train.cli_common import parse_set, start
from rakuten_train.gate_params import load_gate_params
from rakuten_train.loop_cli import loop_app
from rakuten_train.loop_report import train_promotion_figures
from rakuten_train.params import load_params
from rakuten_train.reports import write_reports

# Imported by the commands that use them, not here: TensorFlow (rakuten_train.training,
# rakuten_train.export, ~5 s) and MLflow (rakuten_train.reuse, ~2 s) would slow every
# command's start and --help.

app = typer.Typer(help="Rakuten training service: train and evaluate the multimodal model.")
app.add_typer(loop_app)  # register, gate, promote, report-retrain: top-level commands

DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="Prepared data (train/val/test parquet) [$RAKUTEN_PROCESSED_DIR]."),
]
RawOpt = Annotated[
    Path | None,
    typer.Option("--raw", help="Raw data dir the image paths refer to [$RAKUTEN_RAW_DIR]."),
]
ReportsOpt = Annotated[
    Path | None, typer.Option("--reports", help="Where reports are written [$RAKUTEN_REPORTS_DIR].")
]


@app.command()
def train(
    data: DataOpt = None,
    raw: RawOpt = None,
    params: Annotated[
        Path | None, typer.Option(help="params.yaml (its train: section) [$RAKUTEN_PARAMS_FILE].")
    ] = None,
    bundle_out: Annotated[
        Path | None, typer.Option(help="Bundle directory to write [$RAKUTEN_BUNDLE_DIR].")
    ] = None,
    reports: ReportsOpt = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="MLflow experiment [$RAKUTEN_MLFLOW_EXPERIMENT or rakuten-train]."),
    ] = None,
    register: Annotated[
        bool | None,
        typer.Option(
            help="Register in the MLflow registry and maybe promote [$RAKUTEN_TRAIN_REGISTER, "
            "true]; the retraining DAG turns it off and lets its gate promote."
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite).")
    ] = None,
    image_weights: Annotated[
        Path | None, typer.Option(help="Local .weights.h5 for the image backbone.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a train param: key=value.")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Per-epoch progress and INFO logs.")] = True,
    reuse: Annotated[
        bool,
        typer.Option(
            help="Train nothing when a model was made from the same data, params and code (a "
            "registered version carries its fingerprint): what the compose job does at every "
            "start; DVC runs without it."
        ),
    ] = False,
) -> None:
    """Train on train/val, evaluate on test, write bundle + reports, log to MLflow, register.

    The promotion rule is the gate's (``gate.test_margin`` of the same params file): strictly
    better than the champion by more than the margin.
    """
    settings = start(verbose)
    from rakuten_train.reuse import reuse_model  # noqa: PLC0415  (MLflow)

    overrides = parse_set(set_ or [])
    if settings.registered_model_name and "registry.model_name" not in overrides:
        overrides["registry.model_name"] = settings.registered_model_name
    if image_weights is not None:
        overrides["image.weights"] = str(image_weights)
    reports = reports or settings.reports_dir
    with job_run(
        JOB_TRAIN,
        url=settings.pushgateway_url,
        timeout_s=settings.pushgateway_timeout_s,
        auth=settings.pushgateway_auth(),
    ) as job:
        try:
            train_params = load_params(params or settings.params_file, overrides)
            gate_params = load_gate_params(params or settings.params_file)
        except (ValidationError, ValueError) as exc:
            typer.echo(f"invalid train params: {exc}", err=True)
            raise typer.Exit(2) from None
        registering = settings.train_register if register is None else register
        data, raw = data or settings.processed_dir, raw or settings.raw_dir
        bundle_out = bundle_out or settings.bundle_dir
        tracking_uri = tracking_uri or settings.mlflow_tracking_uri
        reused = None
        if reuse:  # before TensorFlow is imported: a restart that trains nothing stays quick
            reused = reuse_model(
                data=data, raw=raw, params=train_params, bundle_out=bundle_out,
                registry=registering, tracking_uri=tracking_uri,
            )  # fmt: skip
        if reused is not None:
            meta = reused.metadata
            job.rows, job.weighted_f1 = reused.train_rows, meta.metrics.weighted_f1
            job.model_name, job.model_version = meta.model_name, meta.model_version
            job.reused = True
            typer.echo(
                f"model up to date: {meta.model_name} {meta.model_version} (registered version "
                f"{reused.version}) was trained from the same data, params and code (train "
                f"{reused.stamp.short()}); nothing trained. Test weighted F1 "
                f"{job.weighted_f1:.4f}"
            )
            return
        from rakuten_train.training import train as run_training  # noqa: PLC0415  (TensorFlow)

        try:
            result = run_training(
                data=data,
                raw=raw,
                params=train_params,
                bundle_out=bundle_out,
                reports=reports,
                experiment=experiment or settings.mlflow_experiment,
                register=registering,
                tracking_uri=tracking_uri,
                verbose=2 if verbose else 0,
                gate=gate_params,
            )
        except (DataValidationError, FileNotFoundError) as exc:
            typer.echo(f"cannot train: {exc}", err=True)
            raise typer.Exit(2) from None
        m = result.metrics
        job.rows = result.train_rows
        job.weighted_f1 = m.weighted_f1
        job.model_name, job.model_version = result.model_name, result.model_version
        job.reused = False
        if result.promotion is not None:  # champion vs challenger, promoted or refused and why
            p = result.promotion
            job.extra.extend(
                train_promotion_figures(
                    promoted=p.promoted,
                    registered=p.registered,
                    challenger_f1=m.weighted_f1,
                    champion_f1=p.champion_weighted_f1,
                )
            )
    typer.echo(
        f"test weighted F1 {m.weighted_f1:.4f} (text-only {m.text_only_weighted_f1:.4f}, "
        f"image-only {m.image_only_weighted_f1:.4f}), macro F1 {m.macro_f1:.4f}, "
        f"accuracy {m.accuracy:.4f} on {m.n} test rows"
    )
    typer.echo(
        f"bundle {result.bundle_dir}, reports {reports}, MLflow run {result.run_id}, "
        f"{result.epochs_run} epochs in {result.seconds:.0f}s"
    )
    if result.promotion is not None:
        p = result.promotion
        name = train_params.registry.model_name
        if p.registered:
            status = "promoted to champion" if p.promoted else "stays challenger"
            typer.echo(f"registered {name} v{p.version}: {status}")
        else:
            typer.echo(f"not registered: this model is {name} v{p.version} already")
        typer.echo(f"  {p.reason}")


@app.command()
def evaluate(
    bundle: Annotated[
        Path | None, typer.Option(help="Bundle directory to evaluate [$RAKUTEN_BUNDLE_DIR].")
    ] = None,
    data: DataOpt = None,
    raw: RawOpt = None,
    reports: ReportsOpt = None,
) -> None:
    """Evaluate a saved bundle on the held-out test split and write the reports."""
    settings = start(False)
    from rakuten_train.evaluation import evaluate_bundle  # noqa: PLC0415  (pandas: ~1 s)

    reports = reports or settings.reports_dir
    bundle = bundle or settings.bundle_dir
    with job_run(
        JOB_EVALUATE,
        url=settings.pushgateway_url,
        timeout_s=settings.pushgateway_timeout_s,
        auth=settings.pushgateway_auth(),
    ) as job:
        try:
            evaluation, categories = evaluate_bundle(
                bundle, data or settings.processed_dir, raw or settings.raw_dir
            )
            write_reports(evaluation, categories, reports)
        except (DataValidationError, ModelUnavailableError) as exc:
            typer.echo(f"cannot evaluate: {exc}", err=True)
            raise typer.Exit(2) from None
        m = evaluation.metrics
        job.rows = m.n
        job.weighted_f1 = m.weighted_f1
        meta = read_metadata(bundle)  # loaded fine just above: the bundle is there
        job.model_name, job.model_version = meta.model_name, meta.model_version
    typer.echo(
        f"test weighted F1 {m.weighted_f1:.4f} (text-only {m.text_only_weighted_f1:.4f}, "
        f"image-only {m.image_only_weighted_f1:.4f}), macro F1 {m.macro_f1:.4f}, "
        f"accuracy {m.accuracy:.4f} on {m.n} test rows; reports in {reports}"
    )


@app.command()
def export(
    bundle: Annotated[
        Path | None, typer.Argument(help="Bundle directory to export [$RAKUTEN_BUNDLE_DIR].")
    ] = None,
) -> None:
    """Write the bundle's ONNX export (serving/) from its model.keras, checked against it.

    For a bundle saved before the export existed: serving and batch prediction refuse it and
    name this command. An existing export is replaced only once the new one passes its check.
    """
    settings = start(False)
    from rakuten_train.export.bundle import export_bundle  # noqa: PLC0415  (TensorFlow)

    target = bundle or settings.bundle_dir
    try:
        serving = export_bundle(target)
    except ModelUnavailableError as exc:
        typer.echo(f"cannot export: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"exported {target} to {serving}")


def main() -> None:  # pragma: no cover  (entry point)
    app()
