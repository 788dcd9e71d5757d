"""One monitor run over a SQLite serve database: gauges, gating, quality, report, CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from rakuten_core.categories import CategoryIndex
from rakuten_core.drift import FEATURES, FEATURES_BY_NAME, DriftReference, feature_values
from rakuten_core.drift_stats import compare
from rakuten_core.scoring import classification_metrics
from rakuten_monitor.cli import app as cli
from rakuten_monitor.report import render_report
from rakuten_monitor.service import Monitor
from rakuten_monitor.settings import MonitorSettings
from rakuten_monitor.snapshot import Snapshot
from tests.utils.drift_data import draw_features
from tests.utils.monitor import add_feedback, add_predictions, parse_metrics, write_bundle_json


def _settings(database_url: str, bundle_dir: Path, **extra: object) -> MonitorSettings:
    values: dict[str, object] = {
        "database_url": database_url,
        "monitor_model_path": str(bundle_dir),
        "monitor_window": 300,
        "monitor_min_predictions": 100,
        "monitor_min_feedback": 50,
        **extra,
    }
    return MonitorSettings(_env_file=None, **values)  # type: ignore[call-arg]


def _names(monitor: Monitor) -> dict:  # type: ignore[type-arg]
    return parse_metrics(generate_latest(monitor.registry).decode())


def _run_once(settings: MonitorSettings) -> tuple[Snapshot | None, dict]:  # type: ignore[type-arg]
    """One evaluation of a fresh monitor: its snapshot and the samples of its registry."""
    monitor = Monitor(settings)
    try:
        snapshot = monitor.run_once()
        return snapshot, _names(monitor)
    finally:
        monitor.stop()


def test_too_little_data_leaves_the_gauges_absent(database_url: str, bundle_dir: Path) -> None:
    add_predictions(database_url, draw_features(np.random.default_rng(1), 99))
    add_feedback(database_url, [(10, 10)] * 49)
    snapshot, samples = _run_once(_settings(database_url, bundle_dir))
    assert snapshot is not None
    names = {name for name, _ in samples}
    assert not any(n in names for n in ("rakuten_drift_score", "rakuten_live_accuracy"))
    assert "rakuten_live_weighted_f1" not in names
    assert samples[("rakuten_drift_window_predictions", ())] == 99
    assert samples[("rakuten_live_feedback_window", ())] == 49
    assert samples[("rakuten_monitor_runs_total", (("outcome", "success"),))] == 1
    for spec in FEATURES:  # thresholds are configuration: always there
        assert samples[("rakuten_drift_threshold", (("feature", spec.name),))] == spec.threshold


def test_gauges_are_the_core_functions_on_the_latest_window(
    database_url: str, bundle_dir: Path, drift_reference: DriftReference
) -> None:
    rng = np.random.default_rng(2)
    old = datetime.now(UTC) - timedelta(hours=1)
    add_predictions(database_url, draw_features(rng, 200, shift=True), start=old)  # too old
    recent = draw_features(rng, 250)
    add_predictions(database_url, recent)
    truth = rng.choice([10, 40, 50], size=120).tolist()
    predicted = rng.choice([10, 40], size=120).tolist()
    add_feedback(database_url, [(2583, 10)] * 300, start=old)
    add_feedback(database_url, list(zip(truth, predicted, strict=True)))
    _, samples = _run_once(_settings(database_url, bundle_dir, monitor_window=250))
    assert samples[("rakuten_drift_window_predictions", ())] == 250
    values = feature_values(recent)
    for spec in FEATURES:
        expected = compare(
            spec, drift_reference.features[spec.name], values[spec.name], min_count=100
        )
        assert expected is not None
        got = samples[("rakuten_drift_score", (("feature", spec.name),))]
        assert got == pytest.approx(expected.score, abs=1e-6)
        assert got <= spec.threshold  # recent traffic is drawn like the reference
    # the latest 250 feedback rows: the 120 recent ones and 130 of the old (2583 -> 10) ones
    assert samples[("rakuten_live_feedback_window", ())] == 250
    quality = classification_metrics(truth + [2583] * 130, predicted + [10] * 130, CategoryIndex())
    assert samples[("rakuten_live_accuracy", ())] == pytest.approx(quality["accuracy"])
    assert samples[("rakuten_live_weighted_f1", ())] == pytest.approx(quality["weighted_f1"])
    assert 0 < quality["weighted_f1"] < 1


def test_a_shifted_window_crosses_and_the_report_says_so(
    database_url: str, bundle_dir: Path
) -> None:
    add_predictions(database_url, draw_features(np.random.default_rng(3), 150, shift=True))
    snapshot, _ = _run_once(_settings(database_url, bundle_dir))
    assert snapshot is not None
    drifted = {name for name, r in snapshot.drift.items() if r.drifted}
    assert {"predicted_class", "text_length", "image_brightness"} <= drifted
    assert "no_image" not in drifted  # the shift leaves the image share alone
    html = render_report(snapshot)
    assert "Drifted: " in html and "image_brightness" in html
    assert html.count('class="drifted">drifted<') == len(drifted)
    assert "Not enough feedback (0 rows, at least 50 needed)" in html


def test_a_bundle_without_a_reference_counts_as_an_error_but_quality_is_kept(
    database_url: str, tmp_path: Path
) -> None:
    old_bundle = write_bundle_json(tmp_path / "old", {"prediction_prior": {"10": 1.0}})
    add_predictions(database_url, draw_features(np.random.default_rng(4), 120))
    add_feedback(database_url, [(10, 10)] * 60)
    snapshot, samples = _run_once(_settings(database_url, old_bundle))
    assert snapshot is not None and snapshot.drift == {}
    assert "predates the drift module" in (snapshot.reference_error or "")
    assert samples[("rakuten_monitor_runs_total", (("outcome", "error"),))] == 1
    assert samples[("rakuten_live_accuracy", ())] == 1.0
    assert not any(name == "rakuten_drift_score" for name, _ in samples)
    assert not any(name.startswith("rakuten_monitor_last_success") for name, _ in samples)


def test_report_command_writes_the_html_and_fails_clearly_without_a_database(
    database_url: str, bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_predictions(database_url, draw_features(np.random.default_rng(5), 120))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", database_url)
    monkeypatch.setenv("RAKUTEN_MONITOR_MODEL_PATH", str(bundle_dir))
    monkeypatch.setenv("RAKUTEN_LOG_DIR", str(tmp_path / "logs"))
    from rakuten_monitor.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "out" / "drift.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "drift.html").read_text(encoding="utf-8")
    assert "<h1>Drift report</h1>" in html and "120</strong> predictions" in html
    for spec in FEATURES:
        assert f"<td>{spec.name}</td>" in html
    assert f"{FEATURES_BY_NAME['text_length'].threshold:.2f}" in html

    monkeypatch.setenv("RAKUTEN_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "x.html")])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "cannot read the prediction records" in result.output
    assert not (tmp_path / "x.html").exists()


def test_drift_reads_only_the_answers_of_the_reference_model(
    database_url: str, bundle_dir: Path, tmp_path: Path, drift_reference: DriftReference
) -> None:
    """After a promotion the old champion's traffic no longer counts against the new reference."""
    rng = np.random.default_rng(5)
    add_predictions(database_url, draw_features(rng, 150), model_version="monitor-test-1")
    add_predictions(database_url, draw_features(rng, 40), model_version="monitor-test-2")
    promoted = write_bundle_json(tmp_path / "v2", drift_reference, model_version="monitor-test-2")
    for folder, expected, gauges in ((bundle_dir, 150, True), (promoted, 40, False)):
        snapshot, samples = _run_once(_settings(database_url, folder))
        assert snapshot is not None
        assert samples[("rakuten_drift_window_predictions", ())] == expected
        names = {name for name, _ in samples}
        assert ("rakuten_drift_score" in names) is gauges  # 40 < min_predictions: no gauge yet
