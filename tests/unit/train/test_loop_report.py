"""The retrain's Pushgateway figures, built from the gate's JSON (``rakuten_train.loop_report``)."""

from __future__ import annotations

from prometheus_client import generate_latest

from rakuten_core.job_metrics import JOB_RETRAIN, success_registry
from rakuten_train.loop_report import retrain_run

GATE = {
    "decision": "refuse",
    "refused_by": "holdout",
    "model_name": "rakuten-multimodal",
    "checks": {
        "test_split": {"rows": 61, "challenger_f1": 0.71, "champion_f1": 0.70},
        "holdout": {"rows": 80, "challenger_f1": 0.5, "champion_f1": 0.6},
    },
}


def test_a_refusal_is_visible_with_the_check_that_refused() -> None:
    run = retrain_run(GATE, outcome="refused", served_version="v7")
    assert run.job == JOB_RETRAIN and run.weighted_f1 == 0.71 and run.rows == 61
    text = generate_latest(success_registry(run, duration_s=3.0, finished_at=1.0)).decode()
    assert "rakuten_retrain_promoted 0.0" in text
    assert "rakuten_retrain_champion_weighted_f1 0.7" in text
    assert "rakuten_retrain_holdout_rows 80.0" in text
    assert 'rakuten_retrain_decision_info{decision="refuse",refused_by="holdout"} 1.0' in text
    assert 'model_version="v7"' in text


def test_a_run_without_a_gate_reports_only_its_outcome() -> None:
    run = retrain_run(None, outcome="failed", served_version=None)
    text = generate_latest(success_registry(run, duration_s=1.0, finished_at=1.0)).decode()
    assert "rakuten_retrain_promoted 0.0" in text
    assert "decision_info" not in text and run.weighted_f1 is None
