"""The DAG's helper package (airflow/dags/rakuten_loop): settings, redaction, replica addresses.

Plain Python that Airflow's environment imports; its only dependency, httpx, is in the
project's environment too, so these run in the project's test session. The reload against real
serve processes is in tests/integration/test_retrain_dag.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.airflow_env import DAGS_FOLDER
from tests.utils.postgres import free_port


@pytest.fixture(autouse=True)
def _dags_on_path() -> Iterator[None]:
    sys.path.insert(0, str(DAGS_FOLDER))
    yield
    sys.path.remove(str(DAGS_FOLDER))


def test_replica_urls_expand_a_host_name_to_each_address() -> None:
    from rakuten_loop.serve_reload import expand_replicas

    assert expand_replicas(("http://127.0.0.1:8000/",)) == ["http://127.0.0.1:8000"]
    found = expand_replicas(("http://localhost:8123", "http://127.0.0.1:8123"))
    assert "http://127.0.0.1:8123" in found
    assert len(found) == len(set(found))  # the same replica once, however it was named


def test_an_unreachable_replica_fails_the_reload_naming_it() -> None:
    from rakuten_loop.serve_reload import ReloadError, reload_all

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ReloadError, match=f"1 of 1 replica.*{url}") as caught:
        reload_all(
            (url,), username="bot", password="pw-never-shown", model="m", expected="v",
            timeout_s=5,
        )  # fmt: skip
    assert "pw-never-shown" not in str(caught.value)


def test_urls_lose_their_credentials_before_a_log_line() -> None:
    from rakuten_loop.commands import redact

    line = "rakuten-data export-feedback --database-url postgresql://u:s3cret@db:5432/x"
    assert "s3cret" not in redact(line) and "postgresql://***@db:5432/x" in redact(line)


def test_settings_need_a_checkout_and_a_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rakuten_loop.config import LoopConfig

    monkeypatch.setenv("RAKUTEN_LOOP_WORKDIR", str(tmp_path))
    with pytest.raises(ValueError, match="dvc.yaml"):
        LoopConfig.from_env()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    monkeypatch.setenv("RAKUTEN_LOOP_FEEDBACK", "maybe")
    with pytest.raises(ValueError, match="RAKUTEN_LOOP_FEEDBACK"):
        LoopConfig.from_env()
    monkeypatch.setenv("RAKUTEN_LOOP_FEEDBACK", "off")
    monkeypatch.setenv("RAKUTEN_LOOP_SERVE_URLS", "http://a:1, ,http://b:2")
    monkeypatch.setenv("RAKUTEN_LOOP_SERVE_PASSWORD_FILE", str(tmp_path / "pw"))
    config = LoopConfig.from_env()
    assert not config.feedback and config.serve_urls == ("http://a:1", "http://b:2")
    assert config.dvc_targets == ("evaluate",)
    with pytest.raises(ValueError, match="cannot read"):
        config.serve_password()
    (tmp_path / "pw").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        config.serve_password()
    (tmp_path / "pw").write_text("hunter2 with spaces\n", encoding="utf-8")
    assert config.serve_password() == "hunter2 with spaces"


def test_a_step_runs_with_the_allow_listed_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rakuten_loop.commands import run
    from rakuten_loop.config import LoopConfig

    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow@db/airflow")
    monkeypatch.setenv("AIRFLOW__WEBSERVER__SECRET_KEY_CMD", "cat /run/secrets/secret_key")
    monkeypatch.setenv("RAKUTEN_LOOP_SERVE_PASSWORD_FILE", "/run/secrets/serve_password")
    monkeypatch.setenv("PYTHONPATH", "/opt/airflow/site")
    monkeypatch.setenv("RAKUTEN_MLFLOW_EXPERIMENT", "kept")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("PGPASSFILE", "/run/secrets/pgpass")
    out = tmp_path / "env.txt"
    config = LoopConfig(
        workdir=tmp_path,
        bin_dir=None,
        feedback=False,
        database_url="",
        images_dir=None,
        dvc_targets=(),
        serve_urls=(),
        serve_username="",
        serve_password_file=None,
        model_uri="",
        reload_timeout_s=1.0,
    )
    script = f"import os, json; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    run(config, [sys.executable, "-c", script], extra_env={"RAKUTEN_TRAIN_REGISTER": "false"})
    seen = json.loads(out.read_text())
    assert not [name for name in seen if name.startswith("AIRFLOW")]
    assert "RAKUTEN_LOOP_SERVE_PASSWORD_FILE" not in seen and "PYTHONPATH" not in seen
    assert seen["RAKUTEN_MLFLOW_EXPERIMENT"] == "kept"
    assert seen["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert seen["PGPASSFILE"] == "/run/secrets/pgpass"
    assert seen["RAKUTEN_TRAIN_REGISTER"] == "false"
