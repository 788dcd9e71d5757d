"""The DAG's steps: each task's command, built the same way whichever way it runs.

A builder takes the loop's settings and the task's context and returns the
:class:`~rakuten_loop.commands.Step` to run (None: nothing to run); a ``*_done`` function makes
the task's return value of the step's result document. The local execution runs the step as a
subprocess of the worker (:func:`rakuten_loop.commands.run_step`), the kubernetes one as a pod
(:mod:`rakuten_loop.pods`). Imported by the DAG file only (Airflow's environment).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.utils.state import TaskInstanceState

from rakuten_loop.commands import Step
from rakuten_loop.config import LoopConfig
from rakuten_loop.schedule import report_args

logger = logging.getLogger(__name__)
EXIT_REFUSED = 3  # rakuten-train gate: decision made, challenger refused


def _run_dir(config: LoopConfig, context: dict[str, Any]) -> Path:
    """``reports/loop/<run id>/``: this run's JSON documents, kept for the record (a step's
    pod makes it in its own mount of the folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    folder = config.workdir / "reports" / "loop" / safe
    if config.execution == "local":
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _trigger(context: dict[str, Any]) -> tuple[str, list[str]]:
    conf = context["dag_run"].conf or {}
    alerts = [str(a) for a in conf.get("alerts") or []]
    default = "schedule" if context["dag_run"].run_type == "scheduled" else "manual"
    return str(conf.get("trigger") or default), alerts


def _failed(context: dict[str, Any]) -> list[str]:
    states = {ti.task_id: ti.state for ti in context["dag_run"].get_task_instances()}
    bad = (TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED)
    return sorted(t for t, s in states.items() if s in bad)


def export_step(config: LoopConfig, context: dict[str, Any]) -> Step | None:
    trigger, alerts = _trigger(context)
    logger.info("retrain triggered by %s%s", trigger, f" (alerts: {alerts})" if alerts else "")
    if not config.feedback:
        logger.warning("RAKUTEN_LOOP_FEEDBACK=false: no feedback export, data/raw alone")
        return None
    if not config.database_url or config.images_dir is None:
        raise AirflowFailException(
            "feedback export needs RAKUTEN_LOOP_DATABASE_URL and RAKUTEN_LOOP_IMAGES_DIR "
            "(or RAKUTEN_LOOP_FEEDBACK=false)"
        )
    return Step(
        ("rakuten-data", "export-feedback", "--database-url", config.database_url,
         "--images-dir", str(config.images_dir), "--out", "data/feedback"),
    )  # fmt: skip


def pipeline_step(config: LoopConfig, context: dict[str, Any]) -> Step:
    # the gate promotes, not train: train only logs its run and model
    return Step(
        ("dvc", "repro", *config.dvc_targets), extra_env={"RAKUTEN_TRAIN_REGISTER": "false"}
    )


def register_step(config: LoopConfig, context: dict[str, Any]) -> Step:
    folder = _run_dir(config, context)
    out = folder / "register.json"
    return Step(("rakuten-train", "register", "--out", str(out)), run_dir=folder, out=out)


def gate_step(config: LoopConfig, context: dict[str, Any]) -> Step:
    registered = context["ti"].xcom_pull(task_ids="register_challenger")
    trigger, alerts = _trigger(context)
    folder = _run_dir(config, context)
    out = folder / "gate.json"
    args = ["rakuten-train", "gate", "--version", str(registered["version"]),
            "--trigger", trigger, "--out", str(out)]  # fmt: skip
    for alert in alerts:
        args += ["--alert", alert]
    return Step(tuple(args), ok_codes=(0, EXIT_REFUSED), run_dir=folder, out=out)


def gate_done(context: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    logger.info("gate decision: %s (%s)", document["decision"], document["reason"])
    return document


def promote_step(config: LoopConfig, context: dict[str, Any]) -> Step:
    document = context["ti"].xcom_pull(task_ids="gate")
    champion = document.get("champion") or {}
    folder = _run_dir(config, context)
    return Step(
        ("rakuten-train", "promote", "--version", str(document["challenger"]["version"]),
         "--expect-champion", str(champion.get("version") or ""),
         "--reason", document["reason"][:2000],
         "--out", str(folder / "promote.json")),
        run_dir=folder,
    )  # fmt: skip


def report_step(config: LoopConfig, context: dict[str, Any]) -> Step:
    states = {ti.task_id: ti.state for ti in context["dag_run"].get_task_instances()}
    if _failed(context):
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
    folder = _run_dir(config, context)
    gate_file = folder / "gate.json"
    # a pod's files are not the worker's: there, the gate's result says whether it wrote one
    if config.execution == "local":
        gated = gate_file.is_file()
    else:
        gated = context["ti"].xcom_pull(task_ids="gate") is not None
    if gated:
        args += ["--gate", str(gate_file)]
    served = context["ti"].xcom_pull(task_ids="reload_serve")
    if served:
        args += ["--served-version", served]
    # the schedule's period: RakutenTrainingStale's threshold follows RAKUTEN_RETRAIN_SCHEDULE
    args += report_args(context["dag"].timetable, now=datetime.now(UTC))
    return Step(tuple(args), run_dir=folder)


def report_done(context: dict[str, Any], result: object) -> None:
    failed = _failed(context)
    if failed:
        raise AirflowFailException(f"the retrain failed at: {', '.join(failed)}")
