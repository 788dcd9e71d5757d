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

How the steps run: ``RAKUTEN_LOOP_EXECUTION`` (read when the DAG is parsed; anything else than
these two fails the import):

- ``local`` (default, compose): each step is a subprocess of the Airflow worker, from the image's
  second environment, in the working copy ``RAKUTEN_LOOP_WORKDIR`` (:mod:`rakuten_loop.commands`);
- ``kubernetes``: the steps that run the project's CLIs (``export_feedback``, ``run_pipeline``,
  ``register_challenger``, ``gate``, ``promote``, ``report``) are KubernetesPodOperators, each its
  own pod with the same command line, environment and paths (:mod:`rakuten_loop.pods`); their
  result documents come back as the pods' XComs. ``choose``, ``keep_champion`` and
  ``reload_serve`` (serve's HTTP API) stay in the worker. The pods' settings, read when a task
  runs (:class:`rakuten_loop.config.PodSettings`):

  - ``RAKUTEN_LOOP_POD_IMAGE`` (required): the Airflow image (airflow/Dockerfile), which holds
    ``rakuten-data``, ``rakuten-train``, ``dvc`` and the pipeline's checkout;
    ``RAKUTEN_LOOP_POD_PULL_POLICY`` (``IfNotPresent``), ``RAKUTEN_LOOP_POD_PULL_SECRETS``
    (comma-separated Secret names);
  - ``RAKUTEN_LOOP_POD_NAMESPACE`` (default: Airflow's own), ``RAKUTEN_LOOP_POD_FULLNAME``
    (``rakuten``): the platform chart's fullname, whose claims ``<fullname>-data``,
    ``<fullname>-models`` and ``<fullname>-image-store`` and Secret ``<fullname>-airflow-loop``
    the pods mount; ``RAKUTEN_LOOP_POD_SERVICE_ACCOUNT`` (default: the namespace's; the pods
    get no token), ``RAKUTEN_LOOP_POD_UID`` (10001), ``RAKUTEN_LOOP_POD_STARTUP_TIMEOUT_S``
    (600: scheduling and image pull), ``RAKUTEN_LOOP_POD_TMP_SIZE`` (/tmp, ``4Gi``);
  - every step but training: ``RAKUTEN_LOOP_POD_REQUESTS`` (``cpu=250m,memory=1Gi``),
    ``RAKUTEN_LOOP_POD_LIMITS`` (``memory=2Gi``), ``RAKUTEN_LOOP_POD_NODE_SELECTOR``
    (``key=value,...``), ``RAKUTEN_LOOP_POD_TOLERATIONS`` (``key[=value][:Effect],...``);
  - ``run_pipeline``: ``RAKUTEN_LOOP_TRAIN_REQUESTS`` (``cpu=2,memory=8Gi``),
    ``RAKUTEN_LOOP_TRAIN_LIMITS`` (``memory=8Gi``), ``RAKUTEN_LOOP_TRAIN_GPUS`` (0; n > 0 sets the
    ``nvidia.com/gpu`` limit and tolerates the ``nvidia.com/gpu:NoSchedule`` taint),
    ``RAKUTEN_LOOP_TRAIN_NODE_SELECTOR`` and ``RAKUTEN_LOOP_TRAIN_TOLERATIONS`` (added to the
    common ones), e.g. a GPU pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow.models.baseoperator import BaseOperator
from airflow.operators.python import BranchPythonOperator, PythonOperator
from airflow.utils.trigger_rule import TriggerRule
from rakuten_loop import commands
from rakuten_loop.commands import StepSpec
from rakuten_loop.config import LoopConfig, execution_from_env, schedule_from_env
from rakuten_loop.serve_reload import reload_all
from rakuten_loop.steps import (
    export_step,
    gate_done,
    gate_step,
    pipeline_step,
    promote_step,
    register_step,
    report_done,
    report_step,
)

from airflow import DAG

logger = logging.getLogger(__name__)
DAG_ID = "rakuten_retrain"


# The tasks of the local execution: the steps as subprocesses of this worker


def export_feedback(**context: Any) -> float:
    """Returns when the retrain started (the run's figures measure from there)."""
    started = time.time()
    config = LoopConfig.from_env()
    step = export_step(config, context)
    if step is not None:
        commands.run_step(config, step)
    return started


def run_pipeline(**context: Any) -> None:
    config = LoopConfig.from_env()
    commands.run_step(config, pipeline_step(config, context))


def register_challenger(**context: Any) -> dict[str, Any] | None:
    config = LoopConfig.from_env()
    return commands.run_step(config, register_step(config, context))


def gate(**context: Any) -> dict[str, Any]:
    config = LoopConfig.from_env()
    document = commands.run_step(config, gate_step(config, context))
    assert document is not None  # gate_step names its result document
    return gate_done(context, document)


def promote(**context: Any) -> None:
    config = LoopConfig.from_env()
    commands.run_step(config, promote_step(config, context))


def report(**context: Any) -> None:
    config = LoopConfig.from_env()
    commands.run_step(config, report_step(config, context))
    report_done(context, None)


# The light tasks, in the worker whichever the execution: XComs and serve's HTTP API only


def choose(**context: Any) -> str:
    document = context["ti"].xcom_pull(task_ids="gate")
    return "promote" if document["promote"] else "keep_champion"


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


def _started(context: dict[str, Any], result: object) -> float:
    # the task's own start: the pod's scheduling and image pull count in the retrain's time
    return float(context["ti"].start_date.timestamp())


def _step_task(
    task_id: str, local: Callable[..., Any], steps: StepSpec, **kwargs: Any
) -> BaseOperator:
    """The task running one step: ``local`` here, or ``steps``' command in its own pod."""
    if EXECUTION == "kubernetes":
        from rakuten_loop.pods import StepPodOperator  # noqa: PLC0415 (the provider: pods only)

        return StepPodOperator(task_id=task_id, steps=steps, **kwargs)
    return PythonOperator(task_id=task_id, python_callable=local, **kwargs)


EXECUTION = execution_from_env()  # the DAG's shape: an unknown value is an import error

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
    t_export = _step_task(
        "export_feedback", export_feedback, StepSpec(export_step, _started, images=True)
    )
    t_pipeline = _step_task(
        "run_pipeline",
        run_pipeline,
        StepSpec(pipeline_step, train=True),
        execution_timeout=timedelta(hours=6),
        retries=0,  # a failed training is not fixed by running it again
    )
    t_register = _step_task("register_challenger", register_challenger, StepSpec(register_step))
    t_gate = _step_task("gate", gate, StepSpec(gate_step, gate_done))
    t_choose = BranchPythonOperator(task_id="choose", python_callable=choose)
    t_promote = _step_task("promote", promote, StepSpec(promote_step))
    t_keep = PythonOperator(task_id="keep_champion", python_callable=keep_champion)
    t_reload = PythonOperator(task_id="reload_serve", python_callable=reload_serve)
    t_report = _step_task(
        "report", report, StepSpec(report_step, report_done), trigger_rule=TriggerRule.ALL_DONE
    )
    t_export >> t_pipeline >> t_register >> t_gate >> t_choose >> [t_promote, t_keep]
    t_promote >> t_reload >> t_report
    t_keep >> t_report
