"""``rakuten-predict``: batch prediction over a challenge-format CSV and its image folder.

The model defaults to ``RAKUTEN_MODEL_PATH`` and MLflow URIs resolve against
``MLFLOW_TRACKING_URI`` (:class:`rakuten_predict.settings.PredictSettings`); each run pushes its
figures to the Pushgateway when ``RAKUTEN_PUSHGATEWAY_URL`` is set
(:mod:`rakuten_core.job_metrics`).

Exit codes: 0 success; 2 bad input (malformed CSV naming its line, missing file or folder, labels
not covering the rows, bad option); 3 model unavailable (bundle missing or unreadable, MLflow
URI that cannot be resolved); 4 decoding one batch failed three times in a row (a decode process
died, or the batch took longer than ``--decode-timeout``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from rakuten_core.bundle import load_bundle
from rakuten_core.errors import InvalidInputError, ModelUnavailableError
from rakuten_core.job_metrics import JOB_PREDICT, job_run
from rakuten_core.job_stamp import JobStamp, clear_stamp, reusable, write_stamp
from rakuten_core.logs import configure_logging
from rakuten_predict.engine import DEFAULT_DECODE_TIMEOUT_S, DecodeProcessError
from rakuten_predict.model_source import is_mlflow_uri, resolve_model
from rakuten_predict.runner import RunConfig, check_inputs, run_prediction, write_json
from rakuten_predict.settings import PredictSettings
from rakuten_predict.stamp import predict_stamp

app = typer.Typer(
    help="Batch prediction of Rakuten product types from a CSV and an image folder.",
    no_args_is_help=True,
    add_completion=False,
)
logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
EXIT_MODEL_UNAVAILABLE = 3
EXIT_DECODE_FAILED = 4
_EXIT_CODES: tuple[tuple[type[Exception], int], ...] = (
    (InvalidInputError, EXIT_BAD_INPUT),
    (ModelUnavailableError, EXIT_MODEL_UNAVAILABLE),
    (DecodeProcessError, EXIT_DECODE_FAILED),
)


@app.callback()
def main() -> None:
    """Batch prediction of Rakuten product types (``predict``)."""


@app.command()
def predict(
    csv: Annotated[
        Path, typer.Option(help="Products CSV: ,designation,description,productid,imageid")
    ],
    images: Annotated[Path, typer.Option(help="Folder of image_<imageid>_product_<productid>.jpg")],
    out: Annotated[Path, typer.Option(help="Predictions CSV to write")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Bundle directory, or MLflow URI such as models:/rakuten@champion "
            "[$RAKUTEN_MODEL_PATH or models/current]"
        ),
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Summary JSON [default: <out>.summary.json]")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Y-format labels (,prdtypecode) aligned on the index column")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Metrics JSON to write (needs --labels)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per model call")] = 256,
    workers: Annotated[
        int, typer.Option(min=0, help="Decode processes (0 = one per core, 2..8)")
    ] = 0,
    decode_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="Seconds a batch may take to decode once the model waits for it; then its "
            "decode processes are taken for hung, killed and restarted",
        ),
    ] = DEFAULT_DECODE_TIMEOUT_S,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr")] = True,
    reuse: Annotated[
        bool,
        typer.Option(
            help="Predict nothing when OUT was made by the same model version from the same "
            "inputs and code (its stamp says so): what the compose job does at every start"
        ),
    ] = False,
) -> None:
    """Predict every product of CSV; write predictions, a summary and (with labels) metrics."""
    try:
        settings = PredictSettings()
    except ValidationError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    configure_logging("predict", log_dir=settings.log_dir, level=settings.log_level)
    if metrics is not None and labels is None:  # a usage error, not a failed run: no push
        typer.echo("error: --metrics needs --labels", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    with job_run(
        JOB_PREDICT,
        url=settings.pushgateway_url,
        timeout_s=settings.pushgateway_timeout_s,
        auth=settings.pushgateway_auth(),
    ) as job:
        config = RunConfig(
            csv=csv,
            images=images,
            out=out,
            batch_size=batch_size,
            workers=workers,
            decode_timeout_s=decode_timeout,
            labels=labels,
            progress=progress,
        )
        summary_path = summary or out.with_suffix(".summary.json")
        stamp = _stamp(config, model=model or settings.model_path, settings=settings)
        document = _reused(out, summary_path, stamp, reuse=reuse)
        job.reused = document is not None
        if document is None:
            document = _predict(
                settings,
                model=model or settings.model_path,
                config=config,
                summary_path=summary_path,
                metrics=metrics,
            )
            if stamp is not None:
                write_stamp(out, stamp)
        job.rows = int(document["rows"])
        if labels is not None:
            job.weighted_f1 = float(document["metrics"]["weighted_f1"])
        job.model_name = document["model"]["name"]
        job.model_version = document["model"]["version"]
    if job.reused:
        typer.echo(
            f"{out} is up to date ({document['rows']} rows by {document['model']['name']} "
            f"{document['model']['version']}, predict {stamp.short() if stamp else '?'}): "
            "reused, nothing predicted"
        )
        return
    throughput = document["throughput"]
    typer.echo(
        f"{document['rows']} rows -> {out} ({throughput['rows_per_second']} rows/s); "
        f"summary {summary or out.with_suffix('.summary.json')}"
        + (f"; weighted F1 {document['metrics']['weighted_f1']:.4f}" if labels else "")
    )


def _stamp(config: RunConfig, *, model: str, settings: PredictSettings) -> JobStamp | None:
    """The run's stamp; None when its inputs cannot be read (the run then says what is wrong)."""
    try:
        return predict_stamp(config, model=model, tracking_uri=settings.mlflow_tracking_uri)
    except Exception as exc:  # a missing file, an unknown alias, MLflow down: run and report
        logger.info("no stamp for this run (%s): it runs in full", exc)
        return None


def _reused(
    out: Path, summary_path: Path, stamp: JobStamp | None, *, reuse: bool
) -> dict[str, Any] | None:
    """The last run's summary when OUT is up to date for ``stamp``; else None (stamp cleared)."""
    if stamp is None:
        clear_stamp(out)
        return None
    if not reusable(out, stamp, reuse=reuse):
        return None
    try:
        document: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        clear_stamp(out)  # predictions without their summary: made again
        return None
    return document


def _predict(
    settings: PredictSettings,
    *,
    model: str,
    config: RunConfig,
    summary_path: Path,
    metrics: Path | None,
) -> dict[str, Any]:
    """The run itself; bad input, an unavailable model and failing decoding exit with their
    codes."""
    try:
        checked = check_inputs(config)  # before the (slow) model load: bad input fails fast
        load_started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="rakuten-predict-model-") as download:
            resolved = resolve_model(
                model, download_dir=Path(download), tracking_uri=settings.mlflow_tracking_uri
            )
            # fully in memory: the download can go
            bundle = load_bundle(resolved.path)
        load_seconds = time.perf_counter() - load_started
        document = run_prediction(bundle, config, checked)
    except (InvalidInputError, ModelUnavailableError, DecodeProcessError) as exc:
        logger.error("%s", exc)
        typer.echo(f"error: {exc}", err=True)
        code = next(code for kind, code in _EXIT_CODES if isinstance(exc, kind))
        raise typer.Exit(code) from None
    document["model"]["source"] = resolved.source
    document["model"]["registry_version"] = resolved.registry_version
    if is_mlflow_uri(model):
        document["model"]["path"] = None  # a temporary download, gone by now
    document["throughput"]["model_load_seconds"] = round(load_seconds, 3)
    write_json(summary_path, document)
    if metrics is not None:
        write_json(metrics, document["metrics"])
    return document
