"""What a batch job's run pushes, and that a push never fails the job (rakuten_core.job_metrics)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rakuten_core.job_metrics import (
    JOB_PREDICT,
    JOB_TRAIN,
    JobRun,
    failure_registry,
    job_run,
    push_run,
    redact,
    success_registry,
)
from tests.utils.postgres import free_port


def _samples(registry: object) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_a_success_carries_every_known_figure_and_the_model_identity() -> None:
    run = JobRun(JOB_TRAIN, rows=1600, weighted_f1=0.87, model_name="m", model_version="v7")
    samples = _samples(success_registry(run, duration_s=12.5, finished_at=1_700_000_000.0))
    assert samples == {
        "rakuten_job_duration_seconds": [({}, 12.5)],
        "rakuten_job_last_success_timestamp_seconds": [({}, 1_700_000_000.0)],
        "rakuten_job_rows": [({}, 1600.0)],
        "rakuten_job_weighted_f1": [({}, 0.87)],
        "rakuten_job_model_info": [({"model_name": "m", "model_version": "v7"}, 1.0)],
    }


def test_unknown_figures_are_absent_not_zero() -> None:
    samples = _samples(success_registry(JobRun(JOB_PREDICT), duration_s=1.0, finished_at=2.0))
    assert set(samples) == {
        "rakuten_job_duration_seconds",
        "rakuten_job_last_success_timestamp_seconds",
    }


def test_a_failure_carries_only_its_time() -> None:
    assert _samples(failure_registry(finished_at=3.0)) == {
        "rakuten_job_last_failure_timestamp_seconds": [({}, 3.0)]
    }


def test_an_unknown_job_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown job 'rakuten_other'"):
        JobRun("rakuten_other")


def test_without_a_url_nothing_is_pushed() -> None:
    assert push_run(None, JobRun(JOB_TRAIN), succeeded=True, duration_s=1.0) is False
    assert push_run("", JobRun(JOB_TRAIN), succeeded=False, duration_s=1.0) is False


def test_a_refused_push_is_a_warning_without_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://user:s3cret-token@127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="rakuten_core.job_metrics"):
        pushed = push_run(url, JobRun(JOB_TRAIN), succeeded=True, duration_s=1.0, timeout_s=2)
    assert pushed is False
    [record] = caplog.records
    assert "could not push the rakuten_train figures" in record.getMessage()
    assert "s3cret-token" not in record.getMessage() and "user" not in record.getMessage()


def test_job_run_reraises_the_job_error_after_a_failed_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"127.0.0.1:{free_port()}"

    def broken_job() -> None:
        with job_run(JOB_TRAIN, url=url, timeout_s=2) as run:
            run.rows = 10
            raise RuntimeError("the job broke")

    with caplog.at_level(logging.WARNING, logger="rakuten_core.job_metrics"):
        with pytest.raises(RuntimeError, match="the job broke"):
            broken_job()
    assert "could not push" in caplog.text


def test_job_run_without_a_gateway_lets_the_job_finish() -> None:
    with job_run(JOB_PREDICT, url=None) as run:
        run.rows = 3
    assert run.rows == 3


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://pushgateway:9091", "http://pushgateway:9091"),
        ("pushgateway:9091", "http://pushgateway:9091"),
        ("https://u:p@gw.example.org/prefix?x=1", "https://gw.example.org"),
    ],
)
def test_redact_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert redact(url) == shown
