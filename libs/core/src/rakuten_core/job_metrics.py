"""Run figures of the batch jobs, pushed to a Prometheus Pushgateway once per run.

Train, evaluate and predict exit long before Prometheus would scrape them, so each run pushes
its figures to the Pushgateway (``RAKUTEN_PUSHGATEWAY_URL``) and Prometheus scrapes those with
``honor_labels``. The grouping key is the job name alone (``job=rakuten_train`` ...): each run
replaces the previous run's figures, and no unbounded label (run id, file name) is created.

- A run that succeeds PUTs the whole group: ``rakuten_job_duration_seconds``,
  ``rakuten_job_rows``, ``rakuten_job_weighted_f1`` (when the run knows it),
  ``rakuten_job_last_success_timestamp_seconds``, ``rakuten_job_model_info{model_name,
  model_version}`` = 1 and ``rakuten_job_reused`` (1 when the run found its output up to date,
  :mod:`rakuten_core.job_stamp`). Replacing the group drops a stale F1 a previous run may have left.
- A run that fails POSTs ``rakuten_job_last_failure_timestamp_seconds`` only: the figures of the
  last successful run stay, above all its last-success time, which the "no successful training
  run" alert reads.

The retraining loop (``job=rakuten_retrain``, pushed by ``rakuten-train report-retrain`` at the
end of each Airflow run) adds its own figures as :class:`ExtraGauge`: whether the challenger was
promoted, both models' weighted F1 and which check refused it.

A push that fails (no gateway, timeout, refusal) logs a warning and never fails the job: the
figures are a report on the work, not part of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler

logger = logging.getLogger(__name__)

JOB_TRAIN = "rakuten_train"
JOB_EVALUATE = "rakuten_evaluate"
JOB_PREDICT = "rakuten_predict"
JOB_RETRAIN = "rakuten_retrain"
JOBS = frozenset({JOB_TRAIN, JOB_EVALUATE, JOB_PREDICT, JOB_RETRAIN})


@dataclass(frozen=True)
class ExtraGauge:
    """A job-specific figure: name, help, value and a few bounded labels."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class JobRun:
    """What a run learns about itself while it works; filled in by the job as it goes."""

    job: str
    rows: int | None = None
    weighted_f1: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    reused: bool | None = None  # the run found its output up to date and did no work
    extra: list[ExtraGauge] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.job not in JOBS:
            raise ValueError(f"unknown job {self.job!r}; one of {sorted(JOBS)}")


def success_registry(run: JobRun, *, duration_s: float, finished_at: float) -> CollectorRegistry:
    """The figures a successful run pushes (a fresh registry: nothing else leaks in)."""
    registry = CollectorRegistry()
    Gauge("rakuten_job_duration_seconds", "Wall time of the last run.", registry=registry).set(
        duration_s
    )
    Gauge(
        "rakuten_job_last_success_timestamp_seconds",
        "Unix time the last successful run ended.",
        registry=registry,
    ).set(finished_at)
    if run.rows is not None:
        Gauge("rakuten_job_rows", "Rows the last run processed.", registry=registry).set(run.rows)
    if run.weighted_f1 is not None:
        Gauge(
            "rakuten_job_weighted_f1",
            "Weighted F1 the last run measured (test split, or the given labels).",
            registry=registry,
        ).set(run.weighted_f1)
    if run.model_name is not None or run.model_version is not None:
        Gauge(
            "rakuten_job_model_info",
            "The model bundle the last run produced or used (always 1).",
            ["model_name", "model_version"],
            registry=registry,
        ).labels(model_name=run.model_name or "", model_version=run.model_version or "").set(1)
    if run.reused is not None:
        Gauge(
            "rakuten_job_reused",
            "1 when the last run found its output up to date (same inputs and code) and reused it.",
            registry=registry,
        ).set(1.0 if run.reused else 0.0)
    for extra in run.extra:
        names = [k for k, _ in extra.labels]
        gauge = Gauge(extra.name, extra.help, names, registry=registry)
        (gauge.labels(**dict(extra.labels)) if names else gauge).set(extra.value)
    return registry


def failure_registry(*, finished_at: float) -> CollectorRegistry:
    """The one figure a failed run pushes, added to the group without replacing the rest."""
    registry = CollectorRegistry()
    Gauge(
        "rakuten_job_last_failure_timestamp_seconds",
        "Unix time the last failed run ended.",
        registry=registry,
    ).set(finished_at)
    return registry


def push_run(
    url: str | None,
    run: JobRun,
    *,
    succeeded: bool,
    duration_s: float,
    timeout_s: float = 5.0,
    auth: tuple[str, str] | None = None,
) -> bool:
    """Push ``run``'s figures to the gateway at ``url``; True when it accepted them.

    ``auth`` is the gateway's basic-auth user and password (JobSettings.pushgateway_auth).
    Never raises: without ``url`` nothing is pushed, and a failed push is a logged warning.
    """
    if not url:
        return False
    finished_at = time.time()

    def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
        user, password = auth or ("", "")
        return basic_auth_handler(url, method, timeout, headers, data, user, password)

    extra: dict[str, Any] = {"handler": handler} if auth else {}
    try:
        if succeeded:
            registry = success_registry(run, duration_s=duration_s, finished_at=finished_at)
            push_to_gateway(url, job=run.job, registry=registry, timeout=timeout_s, **extra)
        else:
            registry = failure_registry(finished_at=finished_at)
            pushadd_to_gateway(url, job=run.job, registry=registry, timeout=timeout_s, **extra)
    except Exception as exc:  # URLError, HTTPError, timeouts, bad URL: never the job's failure
        logger.warning(
            "could not push the %s figures to the Pushgateway at %s: %s",
            run.job,
            redact(url),
            exc,
        )
        return False
    logger.info("pushed the %s figures to the Pushgateway at %s", run.job, redact(url))
    return True


@contextmanager
def job_run(
    job: str, *, url: str | None, timeout_s: float = 5.0, auth: tuple[str, str] | None = None
) -> Iterator[JobRun]:
    """Time the block and push its figures once when it ends, whether it succeeds or not.

    The block fills in the yielded :class:`JobRun`; an exception leaving the block (including a
    CLI's non-zero exit) counts as a failure and is re-raised after the push.
    """
    run = JobRun(job)
    started = time.perf_counter()
    succeeded = False
    try:
        yield run
        succeeded = True
    finally:  # one push either way; an exception goes on after it
        push_run(
            url,
            run,
            succeeded=succeeded,
            duration_s=time.perf_counter() - started,
            timeout_s=timeout_s,
            auth=auth,
        )


def redact(url: str) -> str:
    """``url`` without credentials or path: what may appear in a log line."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"
