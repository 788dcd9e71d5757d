"""Every DAG of airflow/dags imports in Airflow's own environment and follows the house rules.

``airflow/check_dags.py`` runs in ``.venv-airflow`` (the real Airflow, never the services'
environment): no import error, no cycle, owners, retries and timeouts everywhere. A broken DAG
folder must fail the same check, so the check itself is tested too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.utils.airflow_env import DAGS_FOLDER, airflow_bin, airflow_env
from tests.utils.paths import REPO_ROOT

CHECK = REPO_ROOT / "airflow" / "check_dags.py"
RETRAIN_TASKS = {
    "export_feedback", "run_pipeline", "register_challenger", "gate", "choose", "promote",
    "keep_champion", "reload_serve", "report",
}  # fmt: skip


def _check(folder: Path, home: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [str(airflow_bin("python")), str(CHECK), str(folder)],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dags_import_and_follow_the_rules(tmp_path: Path) -> None:
    code, result = _check(DAGS_FOLDER, tmp_path)
    assert result["problems"] == [] and code == 0
    assert set(result["dags"]) == {"rakuten_retrain"}  # type: ignore[arg-type]
    assert set(result["dags"]["rakuten_retrain"]) == RETRAIN_TASKS  # type: ignore[index]


def test_a_broken_dag_folder_fails_the_check(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "sloppy.py").write_text(
        "from datetime import datetime\n"
        "from airflow import DAG\n"
        "from airflow.operators.empty import EmptyOperator\n"
        "with DAG('sloppy', schedule=None, start_date=datetime(2026, 1, 1)) as dag:\n"
        "    EmptyOperator(task_id='a')\n",
        encoding="utf-8",
    )
    (folder / "broken.py").write_text("import airflow\nimport no_such_module\n", encoding="utf-8")
    code, result = _check(folder, tmp_path / "home")
    assert code == 1
    problems = "\n".join(result["problems"])  # type: ignore[arg-type]
    assert "no_such_module" in problems
    assert "sloppy: no dagrun_timeout" in problems
    assert "sloppy.a: no owner" in problems and "sloppy.a: no execution_timeout" in problems


@pytest.mark.parametrize(
    ("value", "expected"), [("", "@monthly"), ("0 3 * * 1", "0 3 * * 1"), ("none", "None")]
)
def test_the_schedule_comes_from_the_environment(tmp_path: Path, value: str, expected: str) -> None:
    done = subprocess.run(
        [str(airflow_bin("python")), "-c",
         "import rakuten_retrain; print(rakuten_retrain.dag.schedule_interval)"],
        cwd=DAGS_FOLDER,
        env=airflow_env(
            tmp_path, {"RAKUTEN_RETRAIN_SCHEDULE": value, "PYTHONPATH": str(DAGS_FOLDER)}
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
