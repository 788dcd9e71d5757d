"""DAG ``rakuten_retrain``: feedback -> dvc repro -> challenger -> gate -> champion -> reload.

Runs monthly by default (``RAKUTEN_RETRAIN_SCHEDULE``: a cron expression, a preset or ``none``)
and whenever the alert webhook (``rakuten-monitor alert-webhook``) triggers it through Airflow's
REST API with ``{"trigger": "alertmanager", "alerts": [...]}`` as the run's conf.

1. ``export_feedback``: ``rakuten-data export-feedback`` writes the labelled feedback (with its
   recent holdout) to ``data/feedback`` (skipped when ``RAKUTEN_LOOP_FEEDBACK=false``);
2. ``run_pipeline``: ``dvc repro`` (the same stages as ``make run``; prepare adds the feedback to
   train/val, the test split stays fixed); train logs its run without registering;
3. ``register_challenger``: ``rakuten-train register``: the new model, alias ``challenger``;
4. ``gate``: ``rakuten-train gate``: the decision, its figures and reason, in MLflow and a JSON;
5. ``promote`` (``champion`` alias) then ``reload_serve`` (every replica, every worker checked),
   or ``keep_champion`` (the reason in the task log; serve untouched);
6. ``report``: ``rakuten-train report-retrain`` pushes the run's figures to the Pushgateway
   (with the schedule's longest period, which ``RakutenTrainingStale`` compares with the time
   since the last success: :mod:`rakuten_loop.schedule`), and fails the run if any step failed.

The decisions are project code (``rakuten-train``), not DAG code; docs/lifecycle.md explains
each rule and where to change it.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.operators.python import BranchPythonOperator, PythonOperator
from airflow.utils.state import TaskInstanceState
from airflow.utils.trigger_rule import TriggerRule
from rakuten_loop import commands
from rakuten_loop.config import LoopConfig, schedule_from_env
from rakuten_loop.schedule import report_args
from rakuten_loop.serve_reload import reload_all

from airflow import DAG

logger = logging.getLogger(__name__)
DAG_ID = "rakuten_retrain"
EXIT_REFUSED = 3  # rakuten-train gate: decision made, challenger refused


def _run_dir(config: LoopConfig, context: dict[str, Any]) -> Path:
    """``reports/loop/<run id>/``: this run's JSON documents, kept for the record."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    folder = config.workdir / "reports" / "loop" / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _trigger(context: dict[str, Any]) -> tuple[str, list[str]]:
    conf = context["dag_run"].conf or {}
    alerts = [str(a) for a in conf.get("alerts") or []]
    default = "schedule" if context["dag_run"].run_type == "scheduled" else "manual"
    return str(conf.get("trigger") or default), alerts


def export_feedback(**context: Any) -> float:
    """Returns when the retrain started (the run's figures measure from there)."""
    started = time.time()
    config = LoopConfig.from_env()
    trigger, alerts = _trigger(context)
    logger.info("retrain triggered by %s%s", trigger, f" (alerts: {alerts})" if alerts else "")
    if not config.feedback:
        logger.warning("RAKUTEN_LOOP_FEEDBACK=false: no feedback export, data/raw alone")
        return started
    if not config.database_url or config.images_dir is None:
        raise AirflowFailException(
            "feedback export needs RAKUTEN_LOOP_DATABASE_URL and RAKUTEN_LOOP_IMAGES_DIR "
            "(or RAKUTEN_LOOP_FEEDBACK=false)"
        )
    commands.run(
        config,
        ["rakuten-data", "export-feedback", "--database-url", config.database_url,
         "--images-dir", str(config.images_dir), "--out", "data/feedback"],
    )  # fmt: skip
    return started


def run_pipeline(**context: Any) -> None:
    config = LoopConfig.from_env()
    # the gate promotes, not train: train only logs its run and model
    commands.run(
        config, ["dvc", "repro", *config.dvc_targets], extra_env={"RAKUTEN_TRAIN_REGISTER": "false"}
    )


def register_challenger(**context: Any) -> dict[str, Any]:
    config = LoopConfig.from_env()
    out = _run_dir(config, context) / "register.json"
    commands.run(config, ["rakuten-train", "register", "--out", str(out)])
    return commands.read_json(out)


def gate(**context: Any) -> dict[str, Any]:
    config = LoopConfig.from_env()
    registered = context["ti"].xcom_pull(task_ids="register_challenger")
    trigger, alerts = _trigger(context)
    out = _run_dir(config, context) / "gate.json"
    args = ["rakuten-train", "gate", "--version", str(registered["version"]),
            "--trigger", trigger, "--out", str(out)]  # fmt: skip
    for alert in alerts:
        args += ["--alert", alert]
    commands.run(config, args, ok_codes=(0, EXIT_REFUSED))
    document = commands.read_json(out)
    logger.info("gate decision: %s (%s)", document["decision"], document["reason"])
    return document


def choose(**context: Any) -> str:
    document = context["ti"].xcom_pull(task_ids="gate")
    return "promote" if document["promote"] else "keep_champion"


def promote(**context: Any) -> None:
    config = LoopConfig.from_env()
    document = context["ti"].xcom_pull(task_ids="gate")
    champion = document.get("champion") or {}
    commands.run(
        config,
        ["rakuten-train", "promote", "--version", str(document["challenger"]["version"]),
         "--expect-champion", str(champion.get("version") or ""),
         "--reason", document["reason"][:2000],
         "--out", str(_run_dir(config, context) / "promote.json")],
    )  # fmt: skip


def keep_champion(**context: Any) -> None:
    document = context["ti"].xcom_pull(task_ids="gate")
    champion = (document.get("champion") or {}).get("version")
    logger.warning(
        "challenger %s v%s refused (%s); champion v%s keeps serving: %s",
        document["model_name"],
        document["challenger"]["version"],
        document.get("refused_by"),
        champion,
        document["reason"],
    )


def reload_serve(**context: Any) -> str | None:
    config = LoopConfig.from_env()
    expected = context["ti"].xcom_pull(task_ids="register_challenger")["model_version"]
    if not config.serve_urls:
        logger.warning("RAKUTEN_LOOP_SERVE_URLS is empty: no replica reloaded")
        return None
    results = reload_all(
        config.serve_urls,
        username=config.serve_username,
        password=config.serve_password(),
        model=config.model_uri,
        expected=expected,
        timeout_s=config.reload_timeout_s,
    )
    logger.info("%d replica(s) serve %s", len(results), expected)
    return str(expected)


def report(**context: Any) -> None:
    config = LoopConfig.from_env()
    states = {ti.task_id: ti.state for ti in context["dag_run"].get_task_instances()}
    failed = sorted(
        t
        for t, s in states.items()
        if s in (TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED)
    )
    if failed:
        outcome = "failed"
    elif states.get("reload_serve") == TaskInstanceState.SUCCESS:
        outcome = "promoted"
    else:
        outcome = "refused"
    started = context["ti"].xcom_pull(task_ids="export_feedback")
    if started is None:  # the first task failed: the run's own start (a scheduler sets it)
        started = context["dag_run"].start_date.timestamp()
    args = ["rakuten-train", "report-retrain", "--outcome", outcome,
            "--started-at", str(started)]  # fmt: skip
    gate_file = _run_dir(config, context) / "gate.json"
    if gate_file.is_file():
        args += ["--gate", str(gate_file)]
    served = context["ti"].xcom_pull(task_ids="reload_serve")
    if served:
        args += ["--served-version", served]
    # the schedule's period: RakutenTrainingStale's threshold follows RAKUTEN_RETRAIN_SCHEDULE
    args += report_args(context["dag"].timetable, now=datetime.now(UTC))
    commands.run(config, args)
    if failed:
        raise AirflowFailException(f"the retrain failed at: {', '.join(failed)}")


with DAG(
    dag_id=DAG_ID,
    description="Retrain on feedback, gate the challenger, promote and reload serve",
    schedule=schedule_from_env(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    default_args={
        "owner": "mlops",
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["rakuten", "retrain"],
    doc_md=__doc__,
) as dag:
    t_export = PythonOperator(task_id="export_feedback", python_callable=export_feedback)
    t_pipeline = PythonOperator(
        task_id="run_pipeline",
        python_callable=run_pipeline,
        execution_timeout=timedelta(hours=6),
        retries=0,  # a failed training is not fixed by running it again
    )
    t_register = PythonOperator(task_id="register_challenger", python_callable=register_challenger)
    t_gate = PythonOperator(task_id="gate", python_callable=gate)
    t_choose = BranchPythonOperator(task_id="choose", python_callable=choose)
    t_promote = PythonOperator(task_id="promote", python_callable=promote)
    t_keep = PythonOperator(task_id="keep_champion", python_callable=keep_champion)
    t_reload = PythonOperator(task_id="reload_serve", python_callable=reload_serve)
    t_report = PythonOperator(
        task_id="report", python_callable=report, trigger_rule=TriggerRule.ALL_DONE
    )
    t_export >> t_pipeline >> t_register >> t_gate >> t_choose >> [t_promote, t_keep]
    t_promote >> t_reload >> t_report
    t_keep >> t_report
