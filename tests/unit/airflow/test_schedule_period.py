"""``RakutenTrainingStale`` follows the DAG's schedule: one setting, ``RAKUTEN_RETRAIN_SCHEDULE``.

The DAG file is imported in Airflow's own environment under several values of the setting, and
its real timetable gives what the ``report`` task passes to ``rakuten-train report-retrain``
(``--schedule-period-s``, pushed as ``rakuten_retrain_schedule_period_seconds``); the rule's
promtool cases (monitoring/prometheus/tests/platform_alerts_test.yml) compare the time since the
last success with that figure. One subprocess for every value: Airflow takes seconds to import.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.utils.airflow_env import DAGS_FOLDER, airflow_bin, airflow_env
from tests.utils.monitoring import alert_rules

DAY = 86_400
SCHEDULES = {
    "": ["--schedule-period-s", str(31 * DAY)],  # the default, @monthly: its longest month
    "@weekly": ["--schedule-period-s", str(7 * DAY)],
    "0 3 * * 1": ["--schedule-period-s", str(7 * DAY)],
    "0 3 1,15 * *": ["--schedule-period-s", str(17 * DAY)],  # the 15th to the 1st: 17 days
    "none": [],  # triggered only (alerts, people): no period, the alert cannot fire
    "@once": [],
}
SCRIPT = """
import importlib, json, os, sys
from datetime import UTC, datetime
sys.path.insert(0, os.getcwd())
from rakuten_loop.schedule import report_args
found = {}
for value in json.loads(sys.argv[1]):
    os.environ["RAKUTEN_RETRAIN_SCHEDULE"] = value
    dag_module = importlib.reload(importlib.import_module("rakuten_retrain"))
    found[value] = report_args(dag_module.dag.timetable, now=datetime(2026, 1, 10, tzinfo=UTC))
print(json.dumps(found))
"""


def test_the_report_passes_the_period_of_the_dags_own_schedule(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(airflow_bin("python")), "-c", SCRIPT, json.dumps(list(SCHEDULES))],
        cwd=DAGS_FOLDER,
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == SCHEDULES


def test_the_rule_measures_against_the_pushed_period() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "RakutenTrainingStale"]
    expr = " ".join(rule["expr"].split())
    assert 'rakuten_retrain_schedule_period_seconds{job="rakuten_retrain"}' in expr
    assert 'rakuten_job_last_success_timestamp_seconds{job="rakuten_retrain"}' in expr
    assert "24 * 3600" not in expr and "rakuten_train" not in expr.replace("rakuten_retrain", "")
