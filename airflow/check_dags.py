"""DAG integrity check, run with Airflow's own Python (``.venv-airflow/bin/python``).

    .venv-airflow/bin/python airflow/check_dags.py [DAG_FOLDER]

Loads every DAG of the folder (default: ``airflow/dags``) the way the scheduler does and checks:
no import error, no cycle, an owner other than Airflow's default, retries and an execution
timeout on every task, a run timeout and ``catchup`` off on every DAG. Prints one JSON document
(``dags``, ``problems``) as its last line; exit 0 when there is no problem, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def check(folder: Path) -> dict[str, Any]:
    # The scheduler puts its DAG folder on sys.path (the DAG's helper package lives there)
    sys.path.insert(0, str(folder.resolve()))
    from airflow.models import DagBag  # noqa: PLC0415  (needs AIRFLOW_HOME set first)
    from airflow.utils.dag_cycle_tester import check_cycle  # noqa: PLC0415

    bag = DagBag(dag_folder=str(folder), include_examples=False, safe_mode=False)
    problems = [f"import error in {path}: {error}" for path, error in bag.import_errors.items()]
    if not bag.dags and not problems:
        problems.append(f"no DAG found in {folder}")
    for dag_id, dag in sorted(bag.dags.items()):
        try:
            check_cycle(dag)
        except Exception as exc:  # AirflowDagCycleException: the message names the cycle
            problems.append(f"{dag_id}: cycle: {exc}")
        if dag.dagrun_timeout is None:
            problems.append(f"{dag_id}: no dagrun_timeout")
        if dag.catchup:
            problems.append(f"{dag_id}: catchup is on (a paused DAG would replay every interval)")
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            if not task.owner or task.owner == "airflow":
                problems.append(f"{where}: no owner (Airflow's default 'airflow')")
            if task.retries is None:
                problems.append(f"{where}: retries not set")
            if task.execution_timeout is None:
                problems.append(f"{where}: no execution_timeout")
    return {
        "dags": {
            dag_id: sorted(t.task_id for t in dag.tasks) for dag_id, dag in sorted(bag.dags.items())
        },
        "problems": problems,
    }


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("dags"))
    result = check(folder)
    # one line, the last: Airflow's own log lines go to stdout before it
    print(json.dumps(result))  # noqa: T201  (a CLI's output)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
