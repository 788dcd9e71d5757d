"""Champion vs challenger gauges from ``shadow_predictions`` (as serve writes them) and feedback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from rakuten_core.records import Feedback, ShadowPrediction
from rakuten_monitor.report import render_report
from rakuten_monitor.service import Monitor
from rakuten_monitor.settings import MonitorSettings
from tests.utils.monitor import Samples, parse_metrics

SHADOW_GAUGES = ("rakuten_shadow_agreement", "rakuten_shadow_live_accuracy")


def _settings(database_url: str, bundle_dir: Path) -> MonitorSettings:
    return MonitorSettings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        monitor_model_path=str(bundle_dir),
        monitor_window=40,
        monitor_min_predictions=20,
        monitor_min_feedback=10,
    )


def _add_shadow(
    url: str,
    rows: list[tuple[int, int, int | None]],
    *,
    version: str,
    start: datetime,
) -> None:
    """(champion code, challenger code, true code or None) per shadowed request."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            for i, (champion, challenger, truth) in enumerate(rows):
                rid = uuid.uuid4().hex
                at = start + timedelta(seconds=i)
                session.add(
                    ShadowPrediction(
                        request_id=rid,
                        created_at=at,
                        champion_model_version="1",
                        champion_prdtypecode=champion,
                        champion_probability=0.9,
                        challenger_model_name="rakuten-multimodal",
                        challenger_model_version=version,
                        challenger_prdtypecode=challenger,
                        challenger_probability=0.8,
                        challenger_latency_ms=4.0,
                    )
                )
                if truth is not None:
                    session.add(
                        Feedback(
                            request_id=rid,
                            username="alice",
                            true_prdtypecode=truth,
                            predicted_prdtypecode=champion,
                            correct=truth == champion,
                            created_at=at + timedelta(milliseconds=500),
                        )
                    )
    finally:
        engine.dispose()


def _samples(database_url: str, bundle_dir: Path) -> Samples:
    monitor = Monitor(_settings(database_url, bundle_dir))
    try:
        assert monitor.run_once() is not None
        return parse_metrics(generate_latest(monitor.registry).decode())
    finally:
        monitor.stop()


def test_no_challenger_means_no_shadow_gauges(database_url: str, bundle_dir: Path) -> None:
    names = {name for name, _ in _samples(database_url, bundle_dir)}
    assert not any(name.startswith("rakuten_shadow_") for name in names)


def test_agreement_and_both_accuracies_over_the_current_challenger_only(
    database_url: str, bundle_dir: Path
) -> None:
    now = datetime.now(UTC)
    # an older challenger that always disagreed: not part of the figures
    _add_shadow(database_url, [(10, 40, 10)] * 30, version="c1", start=now - timedelta(hours=1))
    # the current one: 30 requests, agrees on 24; 12 with feedback, where the champion is
    # right 6 times and the challenger 9 times
    rows: list[tuple[int, int, int | None]] = []
    rows += [(10, 10, 10)] * 6  # both right
    rows += [(10, 40, 40)] * 3  # challenger right, champion wrong
    rows += [(10, 40, 50)] * 3  # both wrong, disagreeing
    rows += [(2583, 2583, None)] * 18  # agree, no feedback
    _add_shadow(database_url, rows, version="c2", start=now)
    samples = _samples(database_url, bundle_dir)
    version = (("challenger_version", "c2"),)
    assert samples[("rakuten_shadow_window_predictions", version)] == 30
    assert samples[("rakuten_shadow_feedback_window", version)] == 12
    assert samples[("rakuten_shadow_agreement", version)] == 24 / 30
    assert (
        samples[
            ("rakuten_shadow_live_accuracy", (("challenger_version", "c2"), ("role", "champion")))
        ]
        == 6 / 12
    )
    assert (
        samples[
            ("rakuten_shadow_live_accuracy", (("challenger_version", "c2"), ("role", "challenger")))
        ]
        == 9 / 12
    )
    assert not any(labels == (("challenger_version", "c1"),) for _, labels in samples)


def test_the_report_shows_the_shadow_comparison(database_url: str, bundle_dir: Path) -> None:
    _add_shadow(
        database_url,
        [(10, 10, 10)] * 12 + [(10, 40, 40)] * 8,
        version="c4",
        start=datetime.now(UTC),
    )
    monitor = Monitor(_settings(database_url, bundle_dir))
    try:
        snap = monitor.run_once()
    finally:
        monitor.stop()
    assert snap is not None
    html = render_report(snap)
    assert "Champion vs challenger (shadow)" in html and "Challenger c4" in html
    assert "Agreement with the champion <strong>0.6000</strong>" in html
    assert "champion\n<strong>0.6000</strong>, challenger\n<strong>1.0000</strong>" in html


def test_too_few_shadowed_requests_leave_agreement_and_accuracy_absent(
    database_url: str, bundle_dir: Path
) -> None:
    _add_shadow(
        database_url,
        [(10, 10, 10)] * 9 + [(10, 10, None)] * 10,
        version="c3",
        start=datetime.now(UTC),
    )
    samples = _samples(database_url, bundle_dir)
    names = {name for name, _ in samples}
    assert not any(gauge in names for gauge in SHADOW_GAUGES)  # 19 < 20 rows, 9 < 10 feedback
    assert samples[("rakuten_shadow_window_predictions", (("challenger_version", "c3"),))] == 19
    assert samples[("rakuten_shadow_feedback_window", (("challenger_version", "c3"),))] == 9
