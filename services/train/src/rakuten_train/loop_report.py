"""Promotion figures for the Pushgateway: the retrain's (``job=rakuten_retrain``, from the gate's
JSON) and the train job's (``job=rakuten_train``, from its registry step).

Both push the same figures, defined once in :func:`promotion_figures`: one gauge says whether
the run promoted its challenger, two give both models' weighted F1 on the fixed test split, and
an info gauge names the check that refused (a bounded label: ``test_split``, ``holdout``,
``already_champion``, ``already_registered``, ``none``), so a refusal is visible in Prometheus
with its reason's kind; the full reason is in MLflow and the task log. The retrain adds its
holdout's size. The names keep their ``rakuten_retrain_`` prefix whichever job pushes them
(the dashboards and the Pushgateway's allow-list read them by it).
"""

from __future__ import annotations

from typing import Any

from rakuten_core.job_metrics import JOB_RETRAIN, ExtraGauge, JobRun


def promotion_figures(
    *,
    promoted: bool,
    challenger_f1: float | None,
    champion_f1: float | None,
    decision: str | None,
    refused_by: str | None,
) -> list[ExtraGauge]:
    """The figures of one promotion decision (an F1 left out when unknown)."""
    figures = [_promoted(promoted)]
    for who, value in (("challenger", challenger_f1), ("champion", champion_f1)):
        if value is not None:
            figures.append(
                ExtraGauge(
                    f"rakuten_retrain_{who}_weighted_f1",
                    f"Weighted F1 of the {who} on the fixed test split, at the last promotion.",
                    float(value),
                )
            )
    figures.append(
        ExtraGauge(
            "rakuten_retrain_decision_info",
            "The last promotion decision and the check that refused (always 1).",
            1.0,
            (("decision", decision or ""), ("refused_by", refused_by or "none")),
        )
    )
    return figures


def _promoted(promoted: bool) -> ExtraGauge:
    return ExtraGauge(
        "rakuten_retrain_promoted",
        "1 when the last run's promotion decision promoted its challenger, 0 when it kept the "
        "champion.",
        1.0 if promoted else 0.0,
    )


def train_promotion_figures(
    *, promoted: bool, registered: bool, challenger_f1: float, champion_f1: float | None
) -> list[ExtraGauge]:
    """What the train job's registry step decided (:class:`rakuten_train.tracking.Promotion`): a
    model identical to a registered version (same fingerprint, ``registered`` False) is refused
    as ``already_registered``, one not better than the champion by ``test_split``."""
    refused_by = "none"
    if not promoted:
        refused_by = "test_split" if registered else "already_registered"
    return promotion_figures(
        promoted=promoted,
        challenger_f1=challenger_f1,
        champion_f1=champion_f1,
        decision="promote" if promoted else "refuse",
        refused_by=refused_by,
    )


def retrain_run(gate: dict[str, Any] | None, *, outcome: str, served_version: str | None) -> JobRun:
    """A :class:`JobRun` of the retrain, figures taken from the gate's document when present."""
    run = JobRun(JOB_RETRAIN)
    if gate is None:
        run.extra.append(_promoted(outcome == "promoted"))
        return run
    run.model_name = str(gate.get("model_name") or "") or None
    run.model_version = served_version
    checks = gate.get("checks") or {}
    test = checks.get("test_split") or {}
    holdout = checks.get("holdout") or {}
    if test.get("challenger_f1") is not None:
        run.weighted_f1 = float(test["challenger_f1"])
        run.rows = int(test.get("rows") or 0)
    run.extra.extend(
        promotion_figures(
            promoted=outcome == "promoted",
            challenger_f1=test.get("challenger_f1"),
            champion_f1=test.get("champion_f1"),
            decision=str(gate.get("decision") or ""),
            refused_by=str(gate.get("refused_by") or "none"),
        )
    )
    run.extra.append(
        ExtraGauge(
            "rakuten_retrain_holdout_rows",
            "Rows of the recent feedback holdout at the last gate (0: none).",
            float(holdout.get("rows") or 0),
        )
    )
    return run


def schedule_figure(period_s: float) -> ExtraGauge:
    """The retraining DAG's schedule, for ``RakutenTrainingStale``: the longest gap between two
    scheduled runs (the DAG computes it from its timetable, ``RAKUTEN_RETRAIN_SCHEDULE``).

    Pushed by scheduled setups only: without it (no schedule, a run by hand) the alert cannot
    fire, so its threshold and the schedule come from the one setting.
    """
    return ExtraGauge(
        "rakuten_retrain_schedule_period_seconds",
        "Longest gap between two scheduled runs of the retraining DAG (its schedule's period).",
        period_s,
    )
