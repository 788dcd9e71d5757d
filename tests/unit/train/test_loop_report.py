"""Promotion figures for the Pushgateway (``rakuten_train.loop_report``): the retrain's, built from
the gate's JSON, and the train job's, from its registry step."""

from __future__ import annotations

from prometheus_client import generate_latest

from rakuten_core.job_metrics import JOB_RETRAIN, JOB_TRAIN, JobRun, success_registry
from rakuten_train.loop_report import retrain_run, schedule_figure, train_promotion_figures

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


def _train_figures(*, promoted: bool, registered: bool = True, champion: float | None) -> str:
    """What the train job pushes for its registry step (rakuten-train train)."""
    run = JobRun(JOB_TRAIN, weighted_f1=0.74)
    run.extra.extend(
        train_promotion_figures(
            promoted=promoted, registered=registered, challenger_f1=0.74, champion_f1=champion
        )
    )
    return generate_latest(success_registry(run, duration_s=3.0, finished_at=1.0)).decode()


def test_the_train_job_pushes_the_same_promotion_figures() -> None:
    info = "rakuten_retrain_decision_info"
    promoted = _train_figures(promoted=True, champion=0.70)
    assert "rakuten_retrain_promoted 1.0" in promoted
    assert "rakuten_retrain_challenger_weighted_f1 0.74" in promoted
    assert "rakuten_retrain_champion_weighted_f1 0.7" in promoted
    assert info + '{decision="promote",refused_by="none"} 1.0' in promoted
    worse = _train_figures(promoted=False, champion=0.80)
    assert "rakuten_retrain_promoted 0.0" in worse
    assert info + '{decision="refuse",refused_by="test_split"} 1.0' in worse
    same = _train_figures(promoted=False, registered=False, champion=None)
    assert info + '{decision="refuse",refused_by="already_registered"} 1.0' in same
    assert "rakuten_retrain_champion_weighted_f1" not in same  # not compared: no figure


def test_a_scheduled_retrain_pushes_its_schedule_s_period() -> None:
    """RakutenTrainingStale's threshold (the DAG passes --schedule-period-s to report-retrain)."""
    run = retrain_run(GATE, outcome="refused", served_version="v7")
    run.extra.append(schedule_figure(31 * 86400.0))
    text = generate_latest(success_registry(run, duration_s=3.0, finished_at=1.0)).decode()
    assert "rakuten_retrain_schedule_period_seconds 2.6784e+06" in text
