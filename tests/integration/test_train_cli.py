"""``rakuten-train train`` / ``evaluate`` end to end on generated data, with a local MLflow store.

Real everything: the sample is generated and prepared by ``rakuten_data``, the production
architecture is trained (shrunk by ``--set``), MLflow writes to a SQLite store in a temporary
directory, and the registered model is downloaded back through ``rakuten_core.registry``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rakuten_core.job_stamp import make_stamp, write_stamp
from tests.utils.bundles import SMALL_PARAMS, SmallData, cli_set_args, make_small_data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = pytest.mark.slow

MODEL_NAME = "rakuten-cli-test"


def small_args(params: dict[str, object] | None = None) -> list[str]:
    return cli_set_args(
        {**SMALL_PARAMS, "epochs": 3, "registry.model_name": MODEL_NAME, **(params or {})}
    )


@dataclass(frozen=True)
class FirstRun:
    root: Path
    data: SmallData
    uri: str
    output: str


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    root = tmp_path_factory.mktemp("train_cli")
    data = make_small_data(root, train_rows=300, seed=5)
    for folder in (data.raw, data.processed):  # as `rakuten-data sample/prepare` stamp them
        write_stamp(folder, make_stamp("made-by-the-test", {"folder": folder.name}, packages=[]))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    elsewhere = root / "cwd"  # where the user stands: nothing of MLflow's may land here
    elsewhere.mkdir()
    previous = Path.cwd()
    os.chdir(elsewhere)
    try:
        result = _first_train(root, data, uri)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return FirstRun(root, data, uri, result.output)


def _first_train(
    root: Path, data: SmallData, uri: str, *extra: str, bundle: str = "current"
) -> Result:
    from rakuten_train.cli import app

    return CliRunner().invoke(
        app,
        [
            "train", "--data", str(data.processed), "--raw", str(data.raw),
            "--params", str(root / "absent.yaml"), "--bundle-out", str(root / "models" / bundle),
            "--reports", str(root / "reports"), "--experiment", "cli-test",
            "--tracking-uri", uri, "--no-verbose", *small_args(), *extra,
        ],
        env={"RAKUTEN_LOG_DIR": str(root / "logs")},
    )  # fmt: skip


def test_train_writes_bundle_reports_and_says_what_it_did(first_run: FirstRun) -> None:
    from rakuten_core.bundle import load_bundle

    root = first_run.root
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert set(metrics["modalities"]) == {"fused", "text_only", "image_only"}
    bundle = load_bundle(root / "models" / "current")
    assert bundle.metadata.metrics.weighted_f1 == metrics["weighted_f1"]
    assert bundle.metadata.mlflow_run_id
    assert f"test weighted F1 {metrics['weighted_f1']:.4f}" in first_run.output
    assert f"registered {MODEL_NAME} v1: promoted to champion" in first_run.output
    assert "no champion to compare with" in first_run.output


def test_mlflow_run_has_params_epoch_metrics_artifacts_and_lineage(first_run: FirstRun) -> None:
    from mlflow.tracking import MlflowClient

    from rakuten_core.bundle import read_metadata

    meta = read_metadata(first_run.root / "models" / "current")
    client = MlflowClient(first_run.uri)
    run = client.get_run(str(meta.mlflow_run_id))
    assert run.data.params["epochs"] == "3"
    assert run.data.params["text.lstm_units"] == "16"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert run.data.metrics["test_fused_weighted_f1"] == pytest.approx(meta.metrics.weighted_f1)
    assert run.data.tags["data_fingerprint"] == meta.data_fingerprint != ""
    assert run.data.tags["git_commit"] == (meta.git_commit or "unknown")
    reports = {f.path for f in client.list_artifacts(run.info.run_id, "reports")}
    assert "reports/metrics.json" in reports and "reports/confusion_matrix.png" in reports


def test_the_run_lands_in_the_named_experiment_with_artifacts_beside_the_store(
    first_run: FirstRun,
) -> None:
    from mlflow.tracking import MlflowClient

    from rakuten_core.bundle import read_metadata

    client = MlflowClient(first_run.uri)
    run = client.get_run(str(read_metadata(first_run.root / "models" / "current").mlflow_run_id))
    experiment = client.get_experiment_by_name("cli-test")
    assert experiment is not None
    assert run.info.experiment_id == experiment.experiment_id
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
    store = first_run.root / "mlartifacts" / "cli-test"
    assert experiment.artifact_location == store.as_uri()
    assert run.info.artifact_uri.startswith(store.as_uri() + "/")
    for where in (first_run.root / "cwd", first_run.root):
        assert not (where / "mlruns").exists(), f"MLflow wrote {where / 'mlruns'}"
    assert not any((first_run.root / "cwd").iterdir())
    # the bundle is logged once (inside the pyfunc model), not a second time as plain files
    assert len(list(store.rglob("model.keras"))) == 1
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"reports"}


def test_champion_resolves_to_a_loadable_bundle_and_pyfunc(first_run: FirstRun) -> None:
    import mlflow
    import pandas as pd

    from rakuten_core.bundle import load_bundle
    from rakuten_core.registry import resolve_bundle

    local = resolve_bundle(
        f"models:/{MODEL_NAME}@champion", dst=first_run.root / "dl", tracking_uri=first_run.uri
    )
    assert sorted(p.name for p in local.iterdir()) == ["bundle.json", "model.keras", "serving"]
    bundle = load_bundle(local)
    assert bundle.metadata.model_version == (
        load_bundle(first_run.root / "models" / "current").metadata.model_version
    )
    mlflow.set_tracking_uri(first_run.uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    out = pyfunc.predict(
        pd.DataFrame({"designation": ["Collier Chien Nylon Réglable"], "description": [""]})
    )
    assert out.columns.tolist() == ["prdtypecode", "probability", "category"]
    assert int(out.prdtypecode[0]) in {c.code for c in bundle.metadata.categories}
    assert 0.0 < float(out.probability[0]) <= 1.0


def test_a_worse_model_stays_challenger_and_the_run_says_why(first_run: FirstRun) -> None:
    from mlflow.tracking import MlflowClient

    from rakuten_train.cli import app

    root = first_run.root
    strict = root / "strict.yaml"  # the gate's margin is the promotion rule of train too
    strict.write_text("gate:\n  test_margin: 1.0\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "train", "--data", str(first_run.data.processed), "--raw", str(first_run.data.raw),
            "--params", str(strict), "--bundle-out", str(root / "models" / "second"),
            "--reports", str(root / "reports2"), "--experiment", "cli-test",
            "--tracking-uri", first_run.uri, "--no-verbose", *small_args({"epochs": 1}),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"registered {MODEL_NAME} v2: stays challenger" in result.output
    assert "not promoted: test split" in result.output and "margin 1.0000" in result.output
    client = MlflowClient(first_run.uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert str(challenger.version) == "2"
    assert challenger.tags["promotion"] == "rejected"
    assert challenger.tags["promotion_reason"].startswith("not promoted")


def test_the_same_inputs_register_nothing_and_reuse_trains_nothing(first_run: FirstRun) -> None:
    """Restarts: a model made from the same data, params and code is the registered one."""
    from mlflow.tracking import MlflowClient

    from rakuten_core.bundle import read_metadata

    root, client = first_run.root, MlflowClient(first_run.uri)
    versions = {v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    fingerprint = champion.tags["train_fingerprint"]

    again = _first_train(root, first_run.data, first_run.uri, bundle="same")  # DVC: it trains
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert f"not registered: this model is {MODEL_NAME} v{champion.version} already" in again.output
    assert f"fingerprint {fingerprint[:12]}" in again.output

    reused = _first_train(root, first_run.data, first_run.uri, "--reuse", bundle="same")
    assert reused.exit_code == 0, reused.output + repr(reused.exception)
    assert "model up to date" in reused.output and "nothing trained" in reused.output
    assert f"registered version {champion.version})" in reused.output

    shutil.rmtree(root / "models" / "same")  # a lost models volume: the registry has it
    restored = _first_train(root, first_run.data, first_run.uri, "--reuse", bundle="same")
    assert restored.exit_code == 0, restored.output + repr(restored.exception)
    assert "nothing trained" in restored.output
    assert read_metadata(root / "models" / "same").model_version == (
        read_metadata(root / "models" / "current").model_version
    )
    after = {v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    assert after == versions
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == champion.version


def test_evaluate_reproduces_the_training_reports(first_run: FirstRun) -> None:
    from rakuten_train.cli import app

    root = first_run.root
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--bundle", str(root / "models" / "current"),
            "--data", str(first_run.data.processed), "--raw", str(first_run.data.raw),
            "--reports", str(root / "eval"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    trained = json.loads((root / "reports" / "metrics.json").read_text())
    evaluated = json.loads((root / "eval" / "metrics.json").read_text())
    assert evaluated == trained
    assert (root / "eval" / "per_class.csv").read_text() == (
        root / "reports" / "per_class.csv"
    ).read_text()


def test_evaluate_without_data_exits_2(tmp_path: Path, first_run: FirstRun) -> None:
    from rakuten_train.cli import app

    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--bundle", str(first_run.root / "models" / "current"),
            "--data", str(tmp_path), "--raw", str(tmp_path), "--reports", str(tmp_path / "r"),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "rakuten-data prepare" in result.output
