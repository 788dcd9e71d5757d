"""``rakuten-train report-retrain --schedule-period-s`` against a real Pushgateway.

What the retraining DAG's ``report`` task pushes for ``RakutenTrainingStale``: a successful run
carries its schedule's period with its success time; a run without a schedule carries none (the
alert cannot fire); a failed run adds its failure time and leaves the last success, period
included, as they were (what ``RakutenBatchJobFailed`` and the staleness rule read).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.utils.pushgateway_server import job_samples, pushgateway, value

pytestmark = pytest.mark.integration

PERIOD = "rakuten_retrain_schedule_period_seconds"


def _report(url: str, tmp_path: Path, *args: str) -> None:
    from rakuten_train.cli import app

    result = CliRunner().invoke(
        app,
        ["report-retrain", "--started-at", "0", *args],
        env={"RAKUTEN_PUSHGATEWAY_URL": url, "RAKUTEN_LOG_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert '"pushed": true' in result.output


def test_the_schedule_s_period_is_pushed_with_a_success_and_kept_after_a_failure(
    tmp_path: Path,
) -> None:
    with pushgateway(tmp_path) as url:
        _report(url, tmp_path, "--outcome", "refused", "--schedule-period-s", "2678400")
        samples = job_samples(url, "rakuten_retrain")
        assert value(samples, PERIOD) == 2678400.0
        success = value(samples, "rakuten_job_last_success_timestamp_seconds")
        _report(url, tmp_path, "--outcome", "failed", "--schedule-period-s", "2678400")
        samples = job_samples(url, "rakuten_retrain")
        assert value(samples, PERIOD) == 2678400.0
        assert value(samples, "rakuten_job_last_success_timestamp_seconds") == success
        assert value(samples, "rakuten_job_last_failure_timestamp_seconds") >= success
        # a run by hand, or a DAG whose schedule is `none`: the period goes with the group
        _report(url, tmp_path, "--outcome", "promoted")
        samples = job_samples(url, "rakuten_retrain")
        assert PERIOD not in samples
        assert "rakuten_job_last_failure_timestamp_seconds" not in samples


def test_a_period_under_a_second_is_refused() -> None:
    from rakuten_train.cli import app

    result = CliRunner().invoke(
        app, ["report-retrain", "--outcome", "refused", "--started-at", "0",
              "--schedule-period-s", "0"],
    )  # fmt: skip
    assert result.exit_code == 2
