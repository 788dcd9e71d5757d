"""Apache Airflow's own environment (``.venv-airflow``, ``make airflow-env``) for the DAG tests.

Airflow never shares the services' lock, so the tests run it as subprocesses of its venv with a
throw-away ``AIRFLOW_HOME`` (SQLite metadata, or Postgres with :func:`postgres_metadata`) and the
repository's ``airflow/dags``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT

AIRFLOW_VENV = REPO_ROOT / ".venv-airflow"
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
PROJECT_BIN = REPO_ROOT / ".venv" / "bin"


def airflow_bin(name: str = "airflow") -> Path:
    """A program of the Airflow venv; fails the test (not skips) when it was not installed."""
    path = AIRFLOW_VENV / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make airflow-env` (make test does)")
    return path


def airflow_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of an Airflow subprocess: its own home and SQLite DB, no example DAGs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAKUTEN_", "AIRFLOW_", "AIRFLOW__", "MLFLOW_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update(extra or {})
    return env


def postgres_metadata(url: str) -> dict[str, str]:
    """Airflow's metadata in the Postgres database ``url`` with the LocalExecutor, as compose runs
    it (the default SQLite allows only the SequentialExecutor). Pass it as ``extra``."""
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }


def migrate_db(
    home: Path, *, extra: Mapping[str, str] | None = None, timeout_s: float = 900
) -> None:
    """``airflow db migrate`` into ``home``'s database (a minute on a busy 2-core machine)."""
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(airflow_bin()), "db", "migrate"],
        env=airflow_env(home, extra),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def create_user(
    home: Path, username: str, password: str, role: str, *, extra: Mapping[str, str] | None = None
) -> None:
    """An Airflow (FAB) user; the password goes through the CLI of a throw-away test home."""
    done = subprocess.run(
        [str(airflow_bin()), "users", "create", "--username", username, "--password", password,
         "--role", role, "--firstname", username, "--lastname", "test",
         "--email", f"{username}@example.org"],
        env=airflow_env(home, extra), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


# The REST API with basic auth, as compose configures it (AIRFLOW__API__AUTH_BACKENDS)
API_AUTH = {
    "AIRFLOW__API__AUTH_BACKENDS": (
        "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth,"
        "airflow.api.auth.backend.session"
    ),
    "AIRFLOW__WEBSERVER__SECRET_KEY": "test-only-airflow-webserver-secret-key",
    "AIRFLOW__WEBSERVER__WORKERS": "1",
}
