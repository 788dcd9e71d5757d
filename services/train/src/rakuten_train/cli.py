"""``rakuten-train``: train (fit + evaluate + bundle + MLflow + registry) and evaluate-only.

Exit codes: 0 success, 1 runtime failure, 2 bad input (missing data, invalid params).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Rakuten training service: train and evaluate the multimodal model.")

DataOpt = Annotated[Path, typer.Option("--data", help="Prepared data (train/val/test parquet).")]
RawOpt = Annotated[Path, typer.Option("--raw", help="Raw data dir the image paths refer to.")]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="Where reports are written.")]


def _start(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rakuten_core.logs import configure_logging  # noqa: PLC0415

    configure_logging("train", level="INFO" if verbose else "WARNING")


def _parse_set(values: list[str]) -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def train(
    data: DataOpt = Path("data/processed"),
    raw: RawOpt = Path("data/raw"),
    params: Annotated[Path, typer.Option(help="params.yaml (its train: section).")] = Path(
        "params.yaml"
    ),
    bundle_out: Annotated[Path, typer.Option(help="Bundle directory to write.")] = Path(
        "models/current"
    ),
    reports: ReportsOpt = Path("reports"),
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "rakuten-train",
    register: Annotated[
        bool, typer.Option(help="Register in the MLflow registry and maybe promote.")
    ] = True,
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
) -> None:
    """Train on train/val, evaluate on test, write bundle + reports, log to MLflow, register."""
    _start(verbose)
    from pydantic import ValidationError  # noqa: PLC0415

    from rakuten_core.errors import DataValidationError  # noqa: PLC0415
    from rakuten_train.params import load_params  # noqa: PLC0415
    from rakuten_train.training import train as run_training  # noqa: PLC0415

    overrides = _parse_set(set_ or [])
    if image_weights is not None:
        overrides["image.weights"] = str(image_weights)
    try:
        train_params = load_params(params, overrides)
    except (ValidationError, ValueError) as exc:
        typer.echo(f"invalid train params: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = run_training(
            data=data,
            raw=raw,
            params=train_params,
            bundle_out=bundle_out,
            reports=reports,
            experiment=experiment,
            register=register,
            tracking_uri=tracking_uri,
            verbose=2 if verbose else 0,
        )
    except (DataValidationError, FileNotFoundError) as exc:
        typer.echo(f"cannot train: {exc}", err=True)
        raise typer.Exit(2) from None
    m = result.metrics
    typer.echo(
        f"test weighted F1 {m['weighted_f1']:.4f} (text-only {m['text_only_weighted_f1']:.4f}, "
        f"image-only {m['image_only_weighted_f1']:.4f}), macro F1 {m['macro_f1']:.4f}, "
        f"accuracy {m['accuracy']:.4f} on {m['n']} test rows"
    )
    typer.echo(
        f"bundle {result.bundle_dir}, reports {reports}, MLflow run {result.run_id}, "
        f"{result.epochs_run} epochs in {result.seconds:.0f}s"
    )
    if result.promotion is not None:
        p = result.promotion
        status = "promoted to champion" if p.promoted else "stays challenger"
        typer.echo(f"registered {train_params.registry.model_name} v{p.version}: {status}")
        typer.echo(f"  {p.reason}")


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Option(help="Bundle directory to evaluate.")] = Path(
        "models/current"
    ),
    data: DataOpt = Path("data/processed"),
    raw: RawOpt = Path("data/raw"),
    reports: ReportsOpt = Path("reports"),
) -> None:
    """Evaluate a saved bundle on the held-out test split and write the reports."""
    _start(False)
    from rakuten_core.errors import DataValidationError, ModelUnavailableError  # noqa: PLC0415
    from rakuten_train.training import evaluate_bundle  # noqa: PLC0415

    try:
        evaluation = evaluate_bundle(bundle=bundle, data=data, raw=raw, reports=reports)
    except (DataValidationError, ModelUnavailableError) as exc:
        typer.echo(f"cannot evaluate: {exc}", err=True)
        raise typer.Exit(2) from None
    m = evaluation.metrics
    typer.echo(
        f"test weighted F1 {m['weighted_f1']:.4f} (text-only {m['text_only_weighted_f1']:.4f}, "
        f"image-only {m['image_only_weighted_f1']:.4f}), macro F1 {m['macro_f1']:.4f}, "
        f"accuracy {m['accuracy']:.4f} on {m['n']} test rows; reports in {reports}"
    )


def main() -> None:  # pragma: no cover  (entry point)
    app()
