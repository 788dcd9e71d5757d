"""``rakuten-data``: the data pipeline steps, one command per DVC stage.

Exit codes: 0 success, 1 runtime failure (download failed verification, unknown repo or file),
2 bad input (unusable raw data, impossible parameters), 3 Hub unreachable (the one failure an
offline fallback to ``sample`` may follow).

The Hub client (:mod:`rakuten_data.hub`: huggingface_hub's downloads, httpx) and SQLAlchemy
(:mod:`rakuten_data.feedback_export`) take about half a second each to import: only the commands
that use them import them (``download``; ``export-feedback``, ``verify-feedback``), so that
``sample``, ``prepare`` and ``--help`` start without them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

from rakuten_core.errors import InvalidInputError, RakutenError
from rakuten_core.job_stamp import JobStamp, make_stamp, reusable, upstream, write_stamp
from rakuten_core.logs import configure_logging
from rakuten_data.feedback_slice import verify_slice, write_slice
from rakuten_data.feedback_trust import DEFAULT_MAX_ROWS_PER_USER
from rakuten_data.prepare import PreparationError, PrepareOptions, prepare
from rakuten_data.report import DataReport
from rakuten_data.sample import DEFAULT_LABEL_TABLE, SampleSpec, write_sample
from rakuten_data.settings import DEFAULT_REPO_ID, DataSettings, get_settings

app = typer.Typer(
    help="Rakuten data service: download, generate a sample, validate and prepare.",
    no_args_is_help=True,
    add_completion=False,
)
logger = logging.getLogger(__name__)

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2
EXIT_HUB_UNREACHABLE = 3
PACKAGES = ("rakuten_core", "rakuten_data")  # the code whose change makes data jobs run again

ReuseOpt = Annotated[
    bool,
    typer.Option(
        help="Do nothing when OUT was made from the same inputs and code (its stamp says so): "
        "what the compose jobs do at every start; DVC runs without it."
    ),
]


def _stamp(job: str, **inputs: object) -> JobStamp:
    return make_stamp(job, inputs, packages=PACKAGES)


def _reused(out: Path, stamp: JobStamp, reuse: bool) -> bool:
    if reusable(out, stamp, reuse=reuse):
        typer.echo(f"{out} is up to date ({stamp.job} {stamp.short()}): reused, nothing to do")
        return True
    return False


def _setup() -> DataSettings:
    settings = get_settings()
    configure_logging("data", log_dir=settings.log_dir, level=settings.log_level)
    # httpx logs every URL at INFO; CDN URLs of the real Hub carry signatures: keep them out.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return settings


def _exit_for(error: RakutenError) -> typer.Exit:
    """Print ``error`` for the user and map it to the documented exit code."""
    typer.echo(f"error: {error}", err=True)
    if isinstance(error, (InvalidInputError, PreparationError)):
        return typer.Exit(EXIT_BAD_INPUT)
    return typer.Exit(EXIT_RUNTIME)


@app.command(name="download")
def download_command(
    out: Annotated[Path, typer.Option(help="Raw data directory to fill.")] = Path("data/raw"),
    revision: Annotated[str, typer.Option(help="Branch, tag or commit of the dataset.")] = "main",
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="huggingface_hub cache (default: RAKUTEN_HF_CACHE_DIR, HF_HUB_CACHE)."),
    ] = None,
    repo_id: Annotated[
        str | None,
        typer.Option(help=f"Hub dataset (default: RAKUTEN_HF_REPO_ID or {DEFAULT_REPO_ID})."),
    ] = None,
    archive: Annotated[str, typer.Option(help="Image archive in the dataset.")] = "images.zip",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    reuse: ReuseOpt = False,
) -> None:
    """Download the dataset from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN) and extract images."""
    from rakuten_data.download import download  # noqa: PLC0415  (Hub client)
    from rakuten_data.hub import HubSource, HubUnreachableError  # noqa: PLC0415  (Hub client)

    settings = _setup()
    source = HubSource(
        repo_id=repo_id or settings.hf_repo_id,
        revision=revision,
        endpoint=settings.hf_endpoint.rstrip("/"),
        token=settings.token,
        cache_dir=cache_dir or settings.hf_cache_dir,
        timeout_s=settings.hf_timeout_s,
        resumable_min_bytes=settings.hf_resumable_min_bytes,
    )
    stamp = _stamp(
        "download",
        repo_id=source.repo_id,
        revision=revision,
        endpoint=source.endpoint,
        archive=archive,
    )
    if _reused(out, stamp, reuse):
        return
    started = time.perf_counter()
    quiet = disable_progress_bars() if not progress else nullcontext()  # huggingface_hub's bars
    try:
        with quiet:
            summary = download(source, out, archive=archive, progress=progress)
    except HubUnreachableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_HUB_UNREACHABLE) from None
    except RakutenError as exc:
        raise _exit_for(exc) from None
    write_stamp(out, stamp)
    state = "Hub unreachable, local copy is complete" if summary.offline else "up to date"
    typer.echo(
        f"{out} {state} with {source.repo_id}@{summary.commit[:12]}: "
        f"downloaded {', '.join(summary.downloaded) or 'nothing'}; "
        f"unchanged {', '.join(summary.unchanged) or 'nothing'}; "
        f"{summary.train_images} train and {summary.test_images} test images; "
        f"{time.perf_counter() - started:.1f}s"
    )


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Raw data directory to write.")] = Path("data/raw"),
    train_rows: Annotated[int, typer.Option(min=27, help="Labelled training rows.")] = 2000,
    test_rows: Annotated[int, typer.Option(min=0, help="Unlabelled test rows.")] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 42,
    image_size: Annotated[int, typer.Option(help="Side of the square JPEGs, in pixels.")] = 64,
    ambiguous_fraction: Annotated[
        float, typer.Option(help="Share of pictures drawn in another class's style.")
    ] = 0.15,
    label_table: Annotated[
        Path | None,
        typer.Option(help="Real label table for the class distribution (built-in copy if absent)."),
    ] = DEFAULT_LABEL_TABLE,
    reuse: ReuseOpt = False,
) -> None:
    """Write a deterministic synthetic dataset in the raw layout, for offline runs."""
    _setup()
    spec = SampleSpec(
        train_rows=train_rows,
        test_rows=test_rows,
        seed=seed,
        image_size=image_size,
        ambiguous_fraction=ambiguous_fraction,
    )
    table = label_table.read_bytes() if label_table is not None and label_table.is_file() else b""
    stamp = _stamp("sample", spec=asdict(spec), label_table=hashlib.sha256(table).hexdigest())
    if _reused(out, stamp, reuse):
        return
    started = time.perf_counter()
    try:
        summary = write_sample(out, spec, label_table=label_table)
    except RakutenError as exc:
        raise _exit_for(exc) from None
    write_stamp(out, stamp)
    smallest = min(summary.train_class_counts.values())
    largest = max(summary.train_class_counts.values())
    typer.echo(
        f"sample written to {out}: {summary.train_rows} train rows, {summary.test_rows} test rows,"
        f" {len(summary.train_class_counts)} classes ({smallest} to {largest} rows per class)"
        f" in {time.perf_counter() - started:.1f}s"
    )


def _echo_report(report: DataReport, *, err: bool = False) -> None:
    for item in report.issues:
        typer.echo(f"  {item.severity:<7} [{item.code}] {item.message}", err=err)
        for example in item.examples[:3]:
            typer.echo(f"            e.g. {example}", err=err)


@app.command(name="prepare")
def prepare_command(
    raw: Annotated[Path, typer.Option(help="Raw data directory (read only).")] = Path("data/raw"),
    out: Annotated[Path, typer.Option(help="Where the tables and report go.")] = Path(
        "data/processed"
    ),
    val_size: Annotated[float, typer.Option(help="Share of rows for validation.")] = 0.1,
    test_size: Annotated[float, typer.Option(help="Share of rows for the test split.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 42,
    min_class_rows: Annotated[
        int, typer.Option(min=1, help="Fail when a present class has fewer rows than this.")
    ] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Threads decoding images.")] = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    feedback: Annotated[
        Path | None,
        typer.Option(help="Feedback slice (export-feedback): its rows join train/val only."),
    ] = None,
    reuse: ReuseOpt = False,
) -> None:
    """Validate the raw data, clean texts, split train/val/test, write parquet + report."""
    _setup()
    options = PrepareOptions(
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        min_class_rows=min_class_rows,
        workers=workers,
        progress=progress,
    )
    stamp = _stamp(
        "prepare",
        raw=upstream(raw),
        feedback=upstream(feedback) if feedback is not None else "none",
        val_size=val_size,
        test_size=test_size,
        seed=seed,
        min_class_rows=min_class_rows,
    )
    if _reused(out, stamp, reuse):
        return
    started = time.perf_counter()
    try:
        report = prepare(raw, out, options, feedback)
    except PreparationError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("all issues found (also in the report):", err=True)
        _echo_report(exc.report, err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except RakutenError as exc:
        raise _exit_for(exc) from None
    write_stamp(out, stamp)
    splits = ", ".join(f"{name} {s.rows}" for name, s in report.splits.items())
    if report.feedback is not None:
        typer.echo(
            f"feedback slice {report.feedback.slice_id}: {report.feedback.train} rows to train, "
            f"{report.feedback.val} to val, {report.feedback.dropped_in_test} dropped "
            "(products of the test split)"
        )
    typer.echo(
        f"prepared {report.rows} of {report.raw_rows} rows from {raw} into {out} ({splits}); "
        f"images: {report.images.present} readable, {report.images.missing} missing, "
        f"{report.images.unreadable} unreadable; {len(report.warnings)} warnings; "
        f"fingerprint {report.fingerprint[:12]}; {time.perf_counter() - started:.1f}s"
    )
    _echo_report(report)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"--since {value!r} is not an ISO 8601 date or time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@app.command(name="export-feedback")
def export_feedback_command(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="RAKUTEN_DATABASE_URL",
            show_envvar=True,
            show_default=False,
            help="serve's database (SQLAlchemy URL; put a password in the environment, not argv).",
        ),
    ],
    images_dir: Annotated[
        Path, typer.Option(help="serve's image store (RAKUTEN_IMAGE_STORE_DIR).")
    ],
    out: Annotated[Path, typer.Option(help="The slice folder (replaced).")] = Path("data/feedback"),
    since: Annotated[
        str | None, typer.Option(help="Only feedback given at or after this ISO 8601 time (UTC).")
    ] = None,
    holdout_share: Annotated[
        float,
        typer.Option(min=0.0, max=0.99, help="Most recent share kept out of training (gate)."),
    ] = 0.2,
    max_rows_per_user: Annotated[
        int,
        typer.Option(
            min=1,
            help="Feedback rows kept from any one user (their most recent): one account "
            "cannot fill the slice.",
        ),
    ] = DEFAULT_MAX_ROWS_PER_USER,
) -> None:
    """Export labelled feedback (text, stored image, true code) as a slice in the raw layout."""
    # SQLAlchemy, both (see the module docstring)
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from rakuten_data.feedback_export import export_feedback, open_database  # noqa: PLC0415

    _setup()
    started = time.perf_counter()
    try:
        engine = open_database(database_url)
        try:
            manifest = export_feedback(
                engine,
                images_dir=images_dir,
                out=out,
                since=_since(since),
                holdout_share=holdout_share,
                max_rows_per_user=max_rows_per_user,
            )
        finally:
            engine.dispose()
    except RakutenError as exc:
        raise _exit_for(exc) from None
    except SQLAlchemyError as exc:  # unreachable server, refused login: never the URL itself
        typer.echo(f"error: the database cannot be read ({type(exc).__name__})", err=True)
        raise typer.Exit(EXIT_RUNTIME) from None
    if manifest.counts["rows"] == 0:
        logger.warning("no usable feedback: wrote an empty slice to %s", out)
    typer.echo(
        f"feedback slice {manifest.slice_id} in {out}: {manifest.train.rows} train rows, "
        f"{manifest.holdout.rows} holdout rows ({manifest.counts['without_image']} without "
        f"image) from {manifest.counts['feedback_rows']} feedback rows "
        f"({manifest.counts['user_cap_dropped']} over the per-user cap, "
        f"{manifest.counts['conflict_users_products']} products dropped as users disagree); "
        f"{time.perf_counter() - started:.1f}s"
    )
    for item in manifest.issues:
        typer.echo(f"  {item.severity:<7} [{item.code}] {item.message}")


@app.command(name="verify-feedback")
def verify_feedback_command(
    feedback: Annotated[Path, typer.Option(help="The slice folder.")] = Path("data/feedback"),
) -> None:
    """Check a slice against its manifest; an absent or empty folder gets an empty slice.

    The DVC stage `feedback`: an exported slice enters the pipeline only intact, and a
    pipeline without feedback runs as before (prepare reads an empty slice as no feedback).
    """
    from rakuten_data.feedback_export import RULES  # noqa: PLC0415  (SQLAlchemy)

    _setup()
    try:
        manifest = verify_slice(feedback)
        if manifest is None:
            manifest = write_slice(
                feedback,
                train=[],
                holdout=[],
                since=None,
                holdout_share=0.0,
                rules=RULES,
                counts={"feedback_rows": 0, "rows": 0},
                issues=[],
            )
            typer.echo(f"no feedback slice in {feedback}: wrote an empty one")
    except RakutenError as exc:
        raise _exit_for(exc) from None
    typer.echo(
        f"feedback slice {manifest.slice_id} in {feedback} is intact: "
        f"{manifest.train.rows} train rows, {manifest.holdout.rows} holdout rows"
    )
