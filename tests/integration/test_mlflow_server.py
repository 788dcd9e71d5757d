"""Training against a real ``mlflow server`` on 127.0.0.1 (subprocess, free port, tmp store).

The run, its artifacts (proxied through the server's ``mlflow-artifacts:`` store), the registry
version and the ``champion`` alias all go over HTTP, as with the compose MLflow service; the
champion is then resolved back to a bundle directory with ``rakuten_core.registry``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.utils.bundles import SMALL_PARAMS, cli_set_args, make_small_data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
            "--artifacts-destination", str(root / "artifacts"),
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts it slowly
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_train_logs_registers_and_promotes_through_a_real_server(
    mlflow_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from rakuten_core.bundle import load_bundle, read_metadata
    from rakuten_core.errors import BundleError
    from rakuten_core.registry import resolve_bundle, resolve_metadata
    from rakuten_train.cli import app

    server, server_root = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # the env var, as in compose
    cwd = tmp_path / "cwd"  # where the job runs: nothing of MLflow's may land here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("RAKUTEN_LOG_DIR", str(tmp_path / "logs"))
    data = make_small_data(tmp_path, train_rows=200, seed=3)
    result = CliRunner().invoke(
        app,
        [
            "train", "--data", str(data.processed), "--raw", str(data.raw),
            "--params", str(tmp_path / "absent.yaml"), "--bundle-out", str(tmp_path / "bundle"),
            "--reports", str(tmp_path / "reports"), "--experiment", "server-test", "--no-verbose",
            *cli_set_args({**SMALL_PARAMS, "epochs": 2, "registry.model_name": "server-model"}),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "registered server-model v1: promoted to champion" in result.output

    client = MlflowClient(server)
    version = client.get_model_version_by_alias("server-model", "champion")
    run = client.get_run(str(version.run_id))
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert run.data.metrics["test_weighted_f1"] == pytest.approx(metrics["weighted_f1"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    experiment = client.get_experiment_by_name("server-test")
    assert experiment is not None and run.info.experiment_id == experiment.experiment_id
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's choice
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
    assert not any(cwd.iterdir()), sorted(p.name for p in cwd.iterdir())
    # the artifacts went through the server to its store, the bundle once
    assert len(list((server_root / "artifacts").rglob("model.keras"))) == 1
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2

    local = resolve_bundle("models:/server-model@champion", dst=tmp_path / "dl")
    bundle = load_bundle(local)
    assert bundle.metadata.mlflow_run_id == run.info.run_id
    assert bundle.metadata.metrics.weighted_f1 == metrics["weighted_f1"]
    # the metadata alone, found inside the pyfunc model's artifacts/<bundle>/ over HTTP
    folder = resolve_metadata("models:/server-model@champion", dst=tmp_path / "meta")
    assert [p.name for p in (tmp_path / "meta").rglob("*") if p.is_file()] == ["bundle.json"]
    assert read_metadata(folder) == bundle.metadata
    with pytest.raises(BundleError, match="no bundle.json in the artifacts"):
        resolve_metadata(f"runs:/{run.info.run_id}/reports", dst=tmp_path / "none")
