"""``rakuten-train register / gate / promote / report-retrain`` in-process, local MLflow store.

Two real models trained by ``rakuten-train train --no-register`` (as the DAG's pipeline does):
one that learns nothing, one that learns. The gate compares them on the fixed test split and on
a feedback holdout in the raw layout, records its decision, and promote refuses a champion that
moved. The same commands run as subprocesses of the DAG in tests/integration/test_retrain_dag.py.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.utils.bundles import SMALL_PARAMS, SmallData, cli_set_args, make_small_data
from tests.utils.pushgateway_server import job_samples, pushgateway, value

# minutes on an idle 2-core machine; a loaded one needs far more (fixtures included)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3600)]
NAME = "gate-cli-test"


@dataclass(frozen=True)
class Models:
    root: Path
    data: SmallData
    uri: str
    weak: Path
    good: Path
    holdout: Path

    def invoke(self, *args: str) -> Result:
        from rakuten_train.cli import app

        return CliRunner().invoke(
            app,
            [*args, "--tracking-uri", self.uri, "--name", NAME],
            env={"RAKUTEN_LOG_DIR": str(self.root / "logs"), "RAKUTEN_PUSHGATEWAY_URL": ""},
        )


def _train(root: Path, data: SmallData, uri: str, out: str, params: dict[str, object]) -> Path:
    from rakuten_train.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--data", str(data.processed), "--raw", str(data.raw),
         "--params", str(root / "absent.yaml"), "--bundle-out", str(root / out),
         "--reports", str(root / f"reports-{out}"), "--experiment", "gate-cli",
         "--tracking-uri", uri, "--no-verbose", "--no-register",
         *cli_set_args({**SMALL_PARAMS, **params})],
        env={"RAKUTEN_LOG_DIR": str(root / "logs")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    return root / out


def _holdout(root: Path) -> Path:
    """Recent feedback in the raw layout: one X_*.csv, one Y_*.csv, the images below."""
    from rakuten_data.sample import SampleSpec, write_sample

    generated = root / "holdout-raw"
    write_sample(generated, SampleSpec(train_rows=170, test_rows=10, seed=99), label_table=None)
    holdout = root / "feedback" / "holdout"
    holdout.mkdir(parents=True)
    shutil.copy(generated / "X_train_update.csv", holdout / "X_feedback.csv")
    shutil.copy(generated / "Y_train_CVw08PX.csv", holdout / "Y_feedback.csv")
    shutil.copytree(generated / "images" / "image_train", holdout / "images")
    return holdout


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("gate_cli")
    data = make_small_data(root, train_rows=200, seed=4)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    weak = _train(root, data, uri, "weak", {"epochs": 1, "learning_rate": 1e-7})
    good = _train(root, data, uri, "good", {"epochs": 3})
    return Models(root, data, uri, weak, good, _holdout(root))


def _json(result: Result) -> dict[str, object]:
    document: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def test_the_loop_commands_register_gate_and_promote(models: Models) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(models.uri, registry_uri=models.uri)
    first = models.invoke("register", "--bundle", str(models.weak))
    assert first.exit_code == 0, first.output
    registered = _json(first)
    assert registered["version"] == "1" and registered["reused"] is False
    again = models.invoke("register", "--bundle", str(models.weak))
    assert _json(again)["version"] == "1" and _json(again)["reused"] is True  # idempotent

    gate_file = models.root / "gate-1.json"
    gate = models.invoke(
        "gate", "--version", "1", "--data", str(models.data.processed),
        "--raw", str(models.data.raw), "--holdout", str(models.holdout),
        "--out", str(gate_file), "--trigger", "alertmanager",
        "--alert", "RakutenDriftAboveThreshold", "--set", "holdout_min_rows=500",
    )  # fmt: skip
    assert gate.exit_code == 0, gate.output + repr(gate.exception)
    document = json.loads(gate_file.read_text())
    assert document["decision"] == "promote" and document["champion"] is None
    assert document["checks"]["holdout"]["rows"] == 170
    assert document["checks"]["holdout"]["skipped"] is True  # 170 rows < 500
    assert "170 rows < holdout_min_rows 500" in document["reason"]
    assert document["alerts"] == ["RakutenDriftAboveThreshold"]
    promoted = models.invoke("promote", "--version", "1", "--expect-champion", "")
    assert promoted.exit_code == 0, promoted.output
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    second = _json(models.invoke("register", "--bundle", str(models.good)))
    assert second["version"] == "2"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    args = ["gate", "--version", "2", "--data", str(models.data.processed),
            "--raw", str(models.data.raw), "--holdout", str(models.holdout),
            "--set", "holdout_min_rows=20"]  # fmt: skip
    passed = models.invoke(*args, "--out", str(models.root / "gate-2.json"))
    assert passed.exit_code == 0, passed.output + repr(passed.exception)
    document = json.loads((models.root / "gate-2.json").read_text())
    holdout = document["checks"]["holdout"]
    assert holdout["skipped"] is False and holdout["rows"] == 170
    assert holdout["challenger_f1"] is not None and holdout["champion_f1"] is not None
    run = client.get_run(str(second["run_id"])).data
    assert run.tags["gate.decision"] == "promote"
    assert run.metrics["gate.holdout.rows"] == 170.0

    out = str(models.root / "g3.json")
    refused = models.invoke(*args, "--set", "test_margin=0.9", "--out", out)
    assert refused.exit_code == 3, refused.output
    document = json.loads((models.root / "g3.json").read_text())
    assert document["refused_by"] == "test_split" and "+ margin 0.9000" in document["reason"]
    assert client.get_run(str(second["run_id"])).data.tags["gate.decision"] == "refuse"

    moved = models.invoke("promote", "--version", "2", "--expect-champion", "7")
    assert moved.exit_code == 2 and "champion moved" in moved.output
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert models.invoke("gate", "--version", "9").exit_code == 2  # unknown version
    assert models.invoke("gate", "--version", "2", "--set", "nope=1").exit_code == 2


def test_report_retrain_pushes_the_decision(models: Models, tmp_path: Path) -> None:
    from rakuten_train.cli import app

    gate_file = tmp_path / "gate.json"
    gate_file.write_text(
        json.dumps({"decision": "refuse", "refused_by": "holdout", "model_name": NAME,
                    "checks": {"test_split": {"rows": 10, "challenger_f1": 0.6,
                                              "champion_f1": 0.5}}}),
        encoding="utf-8",
    )  # fmt: skip
    with pushgateway(tmp_path) as url:
        result = CliRunner().invoke(
            app,
            ["report-retrain", "--outcome", "refused", "--started-at", "0",
             "--gate", str(gate_file)],
            env={"RAKUTEN_PUSHGATEWAY_URL": url, "RAKUTEN_LOG_DIR": str(tmp_path)},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        samples = job_samples(url, "rakuten_retrain")
    assert value(samples, "rakuten_retrain_promoted") == 0.0
    assert value(samples, "rakuten_retrain_champion_weighted_f1") == 0.5
    bad = CliRunner().invoke(app, ["report-retrain", "--outcome", "maybe", "--started-at", "0"])
    assert bad.exit_code == 2
