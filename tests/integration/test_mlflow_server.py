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
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
        deadline = time.monotonic() + 120
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_train_logs_registers_and_promotes_through_a_real_server(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from rakuten_core.bundle import load_bundle
    from rakuten_core.registry import resolve_bundle
    from rakuten_train.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the env var, as in compose
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

    client = MlflowClient(mlflow_server)
    version = client.get_model_version_by_alias("server-model", "champion")
    run = client.get_run(str(version.run_id))
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert run.data.metrics["test_weighted_f1"] == pytest.approx(metrics["weighted_f1"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2

    local = resolve_bundle("models:/server-model@champion", dst=tmp_path / "dl")
    bundle = load_bundle(local)
    assert bundle.metadata.mlflow_run_id == run.info.run_id
    assert bundle.metadata.metrics["weighted_f1"] == metrics["weighted_f1"]
