"""Train, evaluate and predict push their run figures to a real Pushgateway.

The real CLIs run in-process on generated data (a one-epoch training run, the evaluation of its
bundle, batch prediction with it) with ``RAKUTEN_PUSHGATEWAY_URL`` pointing at a
``prometheus-pushgateway`` started by the test; what the gateway then exposes on ``/metrics``
(what Prometheus scrapes) is compared with what each run wrote to disk.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.utils.bundles import SMALL_PARAMS, SmallData, cli_set_args, make_small_data
from tests.utils.postgres import free_port
from tests.utils.pushgateway_server import job_samples, pushgateway, value

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = [pytest.mark.slow, pytest.mark.integration]


@dataclass(frozen=True)
class Trained:
    root: Path
    data: SmallData
    gateway: str
    started: float
    ended: float


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pushgateway(tmp_path_factory.mktemp("pushgateway")) as url:
        yield url


@pytest.fixture(scope="module")
def trained(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    from rakuten_train.cli import app

    root = tmp_path_factory.mktemp("jobs")
    data = make_small_data(root, train_rows=200, seed=11)
    env = {
        "RAKUTEN_PUSHGATEWAY_URL": gateway,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RAKUTEN_LOG_DIR": str(root / "logs"),
    }
    started = time.time()
    result = CliRunner().invoke(
        app,
        [
            "train", "--data", str(data.processed), "--raw", str(data.raw),
            "--params", str(root / "absent.yaml"), "--bundle-out", str(root / "bundle"),
            "--reports", str(root / "reports"), "--no-register", "--no-verbose",
            *cli_set_args({**SMALL_PARAMS, "epochs": 1}),
        ],
        env=env,
    )  # fmt: skip
    ended = time.time()
    assert result.exit_code == 0, result.output + repr(result.exception)
    yield Trained(root, data, gateway, started, ended)


def _predict(trained: Trained, model: Path, gateway: str) -> tuple[int, str, float, float]:
    from rakuten_predict.cli import app

    started = time.time()
    result = CliRunner().invoke(
        app,
        [
            "predict", "--model", str(model),
            "--csv", str(trained.data.raw / "X_test_update.csv"),
            "--images", str(trained.data.raw / "images" / "image_test"),
            "--out", str(trained.root / "predictions.csv"), "--no-progress",
        ],
        env={"RAKUTEN_PUSHGATEWAY_URL": gateway, "RAKUTEN_LOG_DIR": str(trained.root / "logs")},
    )  # fmt: skip
    return result.exit_code, result.output, started, time.time()


def test_train_pushes_rows_f1_model_and_success_time(trained: Trained) -> None:
    from rakuten_core.bundle import read_metadata

    samples = job_samples(trained.gateway, "rakuten_train")
    metrics = json.loads((trained.root / "reports" / "metrics.json").read_text())
    meta = read_metadata(trained.root / "bundle")
    train_rows = len(pd.read_parquet(trained.data.processed / "train.parquet"))
    assert value(samples, "rakuten_job_rows") == train_rows
    assert value(samples, "rakuten_job_weighted_f1") == pytest.approx(metrics["weighted_f1"])
    assert trained.started <= value(samples, "rakuten_job_last_success_timestamp_seconds")
    assert value(samples, "rakuten_job_last_success_timestamp_seconds") <= trained.ended
    assert 0 < value(samples, "rakuten_job_duration_seconds") <= trained.ended - trained.started
    [(labels, one)] = samples["rakuten_job_model_info"]
    assert one == 1
    assert (labels["model_name"], labels["model_version"]) == (
        meta.model_name,
        meta.model_version,
    )
    assert "rakuten_job_last_failure_timestamp_seconds" not in samples
    # grouping key job=... only: nothing per run, no instance value
    assert {lbl.get("instance", "") for lbl, _ in samples["rakuten_job_rows"]} == {""}


def test_evaluate_pushes_the_test_rows_and_f1_under_its_own_job(trained: Trained) -> None:
    from rakuten_train.cli import app

    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--bundle", str(trained.root / "bundle"),
            "--data", str(trained.data.processed), "--raw", str(trained.data.raw),
            "--reports", str(trained.root / "eval"),
        ],
        env={"RAKUTEN_PUSHGATEWAY_URL": trained.gateway},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((trained.root / "eval" / "metrics.json").read_text())
    samples = job_samples(trained.gateway, "rakuten_evaluate")
    assert value(samples, "rakuten_job_rows") == metrics["n"]
    assert value(samples, "rakuten_job_weighted_f1") == pytest.approx(metrics["weighted_f1"])
    # the training run's figures are a separate group, untouched
    train_rows = len(pd.read_parquet(trained.data.processed / "train.parquet"))
    assert value(job_samples(trained.gateway, "rakuten_train"), "rakuten_job_rows") == train_rows


def test_predict_pushes_then_a_failed_run_keeps_the_last_success(trained: Trained) -> None:
    code, output, started, ended = _predict(trained, trained.root / "bundle", trained.gateway)
    assert code == 0, output
    samples = job_samples(trained.gateway, "rakuten_predict")
    rows = len(pd.read_csv(trained.root / "predictions.csv"))
    assert rows > 0
    assert value(samples, "rakuten_job_rows") == rows
    assert "rakuten_job_weighted_f1" not in samples  # no labels given: no F1 to report
    success = value(samples, "rakuten_job_last_success_timestamp_seconds")
    assert started <= success <= ended
    assert "rakuten_job_last_failure_timestamp_seconds" not in samples

    code, output, started, ended = _predict(trained, trained.root / "absent", trained.gateway)
    assert code == 3, output
    after = job_samples(trained.gateway, "rakuten_predict")
    assert started <= value(after, "rakuten_job_last_failure_timestamp_seconds") <= ended
    assert value(after, "rakuten_job_last_success_timestamp_seconds") == success
    assert value(after, "rakuten_job_rows") == rows


def test_an_unreachable_gateway_never_fails_the_job(trained: Trained) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, output, _, _ = _predict(trained, trained.root / "bundle", closed)
    assert code == 0, output
    log = (trained.root / "logs" / "predict.log").read_text()
    assert "could not push the rakuten_predict figures" in log


def test_a_gateway_that_requires_a_user_takes_the_jobs_figures_only_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose stack's Pushgateway requires a user (docs/security.md): the jobs push with
    the one their settings name, and a push without it is refused without failing the job."""
    from rakuten_core.job_metrics import JOB_PREDICT, JobRun, push_run
    from rakuten_core.job_settings import JobSettings
    from rakuten_core.secrets import generate
    from rakuten_core.stack_secrets import render

    password = generate()
    web_config = tmp_path / "web.yml"
    web_config.write_text(render("basic_auth_users:\n  pushgateway: {bcrypt}\n", password))
    (tmp_path / "password").write_text(password + "\n")
    monkeypatch.setenv("RAKUTEN_PUSHGATEWAY_USERNAME", "pushgateway")
    monkeypatch.setenv("RAKUTEN_PUSHGATEWAY_PASSWORD_FILE", str(tmp_path / "password"))
    settings = JobSettings(_env_file=None)  # type: ignore[call-arg]
    auth = settings.pushgateway_auth()
    assert auth == ("pushgateway", password)
    run = JobRun(JOB_PREDICT)
    run.rows = 7
    with pushgateway(tmp_path, web_config=web_config) as url:
        assert not push_run(url, run, succeeded=True, duration_s=1.0)
        assert not push_run(url, run, succeeded=True, duration_s=1.0, auth=("pushgateway", "x"))
        assert push_run(url, run, succeeded=True, duration_s=1.0, auth=auth)
        samples = job_samples(url, JOB_PREDICT, auth=auth)
    assert value(samples, "rakuten_job_rows") == 7
