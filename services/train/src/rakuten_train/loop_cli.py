"""The retraining loop's commands of ``rakuten-train``: register, gate, promote, report-retrain.

The Airflow DAG ``rakuten_retrain`` runs them as subprocesses after ``dvc repro``; by hand they
run the same loop step by step (docs/lifecycle.md). Each prints one JSON document on stdout
(also written to ``--out`` when given) and logs to stderr.

Exit codes:
    0  success; for ``gate``: the challenger may be promoted
    1  runtime failure (MLflow unreachable, unexpected error)
    2  bad input (missing bundle or data, unknown version, invalid params, the champion moved)
    3  ``gate`` only: the challenger is refused (the decision and its reason are in the JSON)
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from rakuten_core.errors import (
    BundleError,
    DataValidationError,
    InvalidInputError,
    ModelUnavailableError,
)
from rakuten_core.job_metrics import push_run
from rakuten_train.cli_common import parse_set, start
from rakuten_train.gate_params import load_gate_params
from rakuten_train.loop_report import retrain_run, schedule_figure
from rakuten_train.params import load_params
from rakuten_train.settings import TrainSettings

# Imported by the commands that use them, not here: MLflow (rakuten_train.loop_registry,
# mlflow.exceptions, ~2 s) and TensorFlow (rakuten_train.gate_run, ~5 s) would slow every
# command's start, --help and report-retrain included.

logger = logging.getLogger(__name__)
EXIT_REFUSED = 3
# added to ``rakuten-train`` without a name (rakuten_train.cli): its commands are top-level
loop_app = typer.Typer()

NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Registered model [$RAKUTEN_REGISTERED_MODEL_NAME or params]."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the JSON here.")]
TrackingOpt = Annotated[
    str | None, typer.Option(help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite).")
]
ParamsOpt = Annotated[Path | None, typer.Option(help="params.yaml [$RAKUTEN_PARAMS_FILE].")]


def _write_document(document: dict[str, Any], out: Path) -> None:
    """The JSON document, written whole (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(out)


def _emit(document: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        _write_document(document, out)
    typer.echo(json.dumps(document, default=str))


def _model_name(explicit: str | None, params: Path) -> str:
    return explicit or load_params(params).registry.model_name


def _begin(name: str | None, params: Path | None) -> tuple[TrainSettings, str, Path]:
    """Settings (bad ones exit 2), logging, the registered model's name and the params file."""
    settings = start(True)
    params_file = params or settings.params_file
    try:
        model = _model_name(name or settings.registered_model_name, params_file)
    except (ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        typer.echo(f"invalid params in {params_file}: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings, model, params_file


@contextmanager
def _exit_codes(action: str, *bad_input: type[Exception]) -> Iterator[None]:
    """``bad_input`` errors exit 2 (``cannot <action>: ...``), MLflow's own failures exit 1."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  (MLflow: see the imports)

    try:
        yield
    except bad_input as exc:
        typer.echo(f"cannot {action}: {exc}", err=True)
        raise typer.Exit(2) from None
    except MlflowException as exc:
        typer.echo(f"MLflow failed: {exc.message}", err=True)
        raise typer.Exit(1) from None


@loop_app.command()
def register(
    bundle: Annotated[Path | None, typer.Option(help="Bundle [$RAKUTEN_BUNDLE_DIR].")] = None,
    name: NameOpt = None,
    params: ParamsOpt = None,
    tracking_uri: TrackingOpt = None,
    out: OutOpt = None,
) -> None:
    """Register the bundle's MLflow model as the `challenger` (reused if already registered)."""
    settings, model, _ = _begin(name, params)
    from rakuten_train.loop_registry import register_challenger  # noqa: PLC0415  (MLflow)
    from rakuten_train.loop_registry import tracking_uri as resolve_uri  # noqa: PLC0415  (MLflow)

    with _exit_codes("register", InvalidInputError, BundleError):
        registered = register_challenger(
            bundle or settings.bundle_dir,
            name=model,
            tracking_uri=resolve_uri(tracking_uri or settings.mlflow_tracking_uri),
        )
    _emit(registered.to_json(), out)


@loop_app.command()
def gate(
    version: Annotated[str, typer.Option(help="The challenger's registry version.")],
    name: NameOpt = None,
    data: Annotated[Path | None, typer.Option(help="Prepared data (fixed test split).")] = None,
    raw: Annotated[Path | None, typer.Option(help="Raw data the test split refers to.")] = None,
    holdout: Annotated[
        Path | None, typer.Option(help="Feedback holdout folder (raw layout); absent = none.")
    ] = Path("data/feedback/holdout"),
    params: ParamsOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a gate param: key=value.")
    ] = None,
    tracking_uri: TrackingOpt = None,
    trigger: Annotated[str, typer.Option(help="What started this retrain (recorded).")] = "manual",
    alert: Annotated[
        list[str] | None, typer.Option(help="Alert that triggered it (repeatable; recorded).")
    ] = None,
    out: OutOpt = None,
) -> None:
    """Decide whether the challenger replaces the champion; record why (exit 0 yes, 3 no)."""

    settings, model, params_file = _begin(name, params)
    from rakuten_train.gate_run import GateInputs, run_gate  # noqa: PLC0415  (MLflow, pandas)
    from rakuten_train.loop_registry import tracking_uri as resolve_uri  # noqa: PLC0415  (MLflow)

    try:
        gate_params = load_gate_params(params_file, parse_set(set_ or []))
    except (ValidationError, ValueError) as exc:
        typer.echo(f"invalid gate params: {exc}", err=True)
        raise typer.Exit(2) from None
    with tempfile.TemporaryDirectory(prefix="rakuten-gate-") as work:
        inputs = GateInputs(
            model_name=model,
            version=version,
            tracking_uri=resolve_uri(tracking_uri or settings.mlflow_tracking_uri),
            data=data or settings.processed_dir,
            raw=raw or settings.raw_dir,
            holdout=holdout,
            work_dir=Path(work),
        )
        with _exit_codes("gate", ModelUnavailableError, DataValidationError):
            document = run_gate(
                inputs, gate_params, context={"trigger": trigger, "alerts": alert or []}
            )
    logger.log(
        logging.INFO if document["promote"] else logging.WARNING,
        "gate: %s v%s %s",
        model,
        version,
        document["reason"],
    )
    typer.echo(f"gate: {document['reason']}", err=True)
    _emit(document, out)
    if not document["promote"]:
        raise typer.Exit(EXIT_REFUSED)


@loop_app.command()
def promote(
    version: Annotated[str, typer.Option(help="The version the gate accepted.")],
    expect_champion: Annotated[
        str, typer.Option(help="The champion version the gate compared with ('' = none).")
    ],
    reason: Annotated[str, typer.Option(help="Why (recorded on the version).")] = "gate passed",
    name: NameOpt = None,
    params: ParamsOpt = None,
    tracking_uri: TrackingOpt = None,
    out: OutOpt = None,
) -> None:
    """Point `champion` at VERSION, unless the champion moved since the gate (exit 2)."""
    settings, model, _ = _begin(name, params)
    from rakuten_train.loop_registry import promote as move_champion  # noqa: PLC0415  (MLflow)
    from rakuten_train.loop_registry import tracking_uri as resolve_uri  # noqa: PLC0415  (MLflow)

    with _exit_codes("promote", InvalidInputError):
        previous = move_champion(
            name=model,
            version=version,
            expect_champion=expect_champion,
            tracking_uri=resolve_uri(tracking_uri or settings.mlflow_tracking_uri),
            reason=reason,
        )
    _emit({"model_name": model, "champion": version, "previous_champion": previous}, out)


@loop_app.command("report-retrain")
def report_retrain(
    outcome: Annotated[str, typer.Option(help="promoted | refused | failed")],
    started_at: Annotated[float, typer.Option(help="Unix time the retrain started.")],
    gate_file: Annotated[
        Path | None, typer.Option("--gate", help="The gate's JSON, when it ran.")
    ] = None,
    served_version: Annotated[
        str | None, typer.Option(help="model_version every replica serves now.")
    ] = None,
    schedule_period_s: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Longest gap between two scheduled runs of the DAG (none: not scheduled).",
        ),
    ] = None,
) -> None:
    """Push the retrain's figures to the Pushgateway ($RAKUTEN_PUSHGATEWAY_URL)."""
    settings = start(True)
    if outcome not in ("promoted", "refused", "failed"):
        typer.echo(f"--outcome must be promoted, refused or failed, got {outcome!r}", err=True)
        raise typer.Exit(2)
    document: dict[str, Any] | None = None
    if gate_file is not None and gate_file.is_file():
        document = json.loads(gate_file.read_text(encoding="utf-8"))
    run = retrain_run(document, outcome=outcome, served_version=served_version)
    if schedule_period_s is not None:  # what RakutenTrainingStale measures against
        run.extra.append(schedule_figure(schedule_period_s))
    pushed = push_run(
        settings.pushgateway_url,
        run,
        succeeded=outcome != "failed",
        duration_s=max(0.0, time.time() - started_at),
        timeout_s=settings.pushgateway_timeout_s,
        auth=settings.pushgateway_auth(),
    )
    typer.echo(json.dumps({"outcome": outcome, "pushed": pushed}))
