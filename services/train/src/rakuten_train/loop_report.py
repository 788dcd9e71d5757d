"""The retrain's figures for the Pushgateway (``job=rakuten_retrain``), from the gate's JSON.

One gauge says whether the run promoted its challenger, two give both models' weighted F1 on the
fixed test split, one the holdout's size, and an info gauge names the check that refused (a
bounded label: ``test_split``, ``holdout``, ``already_champion``, ``none``), so a refusal is
visible in Prometheus with its reason's kind; the full reason is in MLflow and the task log.
"""

from __future__ import annotations

from typing import Any

from rakuten_core.job_metrics import JOB_RETRAIN, ExtraGauge, JobRun


def retrain_run(gate: dict[str, Any] | None, *, outcome: str, served_version: str | None) -> JobRun:
    """A :class:`JobRun` of the retrain, figures taken from the gate's document when present."""
    run = JobRun(JOB_RETRAIN)
    run.extra.append(
        ExtraGauge(
            "rakuten_retrain_promoted",
            "1 when the last retrain promoted its challenger, 0 when it kept the champion.",
            1.0 if outcome == "promoted" else 0.0,
        )
    )
    if gate is None:
        return run
    run.model_name = str(gate.get("model_name") or "") or None
    run.model_version = served_version
    checks = gate.get("checks") or {}
    test = checks.get("test_split") or {}
    holdout = checks.get("holdout") or {}
    if test.get("challenger_f1") is not None:
        run.weighted_f1 = float(test["challenger_f1"])
        run.rows = int(test.get("rows") or 0)
    for who in ("challenger", "champion"):
        value = test.get(f"{who}_f1")
        if value is not None:
            run.extra.append(
                ExtraGauge(
                    f"rakuten_retrain_{who}_weighted_f1",
                    f"Weighted F1 of the {who} on the fixed test split, at the last gate.",
                    float(value),
                )
            )
    run.extra.append(
        ExtraGauge(
            "rakuten_retrain_holdout_rows",
            "Rows of the recent feedback holdout at the last gate (0: none).",
            float(holdout.get("rows") or 0),
        )
    )
    run.extra.append(
        ExtraGauge(
            "rakuten_retrain_decision_info",
            "The last gate's decision and the check that refused (always 1).",
            1.0,
            (
                ("decision", str(gate.get("decision") or "")),
                ("refused_by", str(gate.get("refused_by") or "none")),
            ),
        )
    )
    return run
