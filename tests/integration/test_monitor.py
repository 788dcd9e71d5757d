"""The monitor as deployed: a real ``rakuten-monitor serve-metrics`` process over a real database.

Records are written as serve writes them (core tables, database migrated by serve's Alembic);
``/metrics`` is scraped over HTTP and every figure is checked against the core functions
computed here, independently, on the rows the test wrote. Runs on PostgreSQL (including an
outage) and on SQLite (the embedded default).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from rakuten_core.categories import CODES, CategoryIndex
from rakuten_core.drift import (
    FEATURES,
    DriftReference,
    ProductFeatures,
    build_reference,
    feature_values,
)
from rakuten_core.drift_stats import compare
from rakuten_core.scoring import classification_metrics
from rakuten_serve.db.migrate import upgrade
from tests.utils.drift_data import draw_features
from tests.utils.monitor import (
    MonitorProcess,
    Samples,
    add_feedback,
    add_predictions,
    run_monitor,
    write_bundle_json,
)
from tests.utils.postgres import PostgresServer, running_postgres

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WINDOW = 300
MIN_PREDICTIONS = 100
MIN_FEEDBACK = 50
BASE = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    return build_reference(draw_features(np.random.default_rng(11), 2000), codes=CODES)


def _score(samples: Samples, feature: str) -> float | None:
    return samples.get(("rakuten_drift_score", (("feature", feature),)))


def _runs(samples: Samples, outcome: str) -> float:
    return samples.get(("rakuten_monitor_runs_total", (("outcome", outcome),)), 0.0)


def _check_drift(samples: Samples, reference: DriftReference, rows: list[ProductFeatures]) -> None:
    values = feature_values(rows)
    for spec in FEATURES:
        expected = compare(
            spec, reference.features[spec.name], values[spec.name], min_count=MIN_PREDICTIONS
        )
        assert expected is not None
        assert _score(samples, spec.name) == pytest.approx(expected.score, abs=1e-6), spec.name


def _exercise(monitor: MonitorProcess, url: str, reference: DriftReference) -> Samples:
    rng = np.random.default_rng(5)
    # too little data: counts exported, drift and quality absent (not 0)
    add_predictions(url, draw_features(rng, 60), start=BASE)
    add_feedback(url, [(10, 10)] * 20, start=BASE)
    samples = monitor.wait_for(
        lambda s: s.get(("rakuten_drift_window_predictions", ())) == 60
        and s.get(("rakuten_live_feedback_window", ())) == 20
    )
    assert not any(name in ("rakuten_drift_score", "rakuten_live_accuracy") for name, _ in samples)
    assert ("rakuten_live_weighted_f1", ()) not in samples

    # a full window drawn like the reference: scores as the core computes them, all quiet
    normal = draw_features(rng, WINDOW)
    add_predictions(url, normal, start=BASE + timedelta(hours=1))
    truth = rng.choice([10, 40, 50, 2583], size=100).tolist()
    predicted = [t if rng.random() < 0.7 else 40 for t in truth]
    add_feedback(url, list(zip(truth, predicted, strict=True)), start=BASE + timedelta(hours=1))
    samples = monitor.wait_for(
        lambda s: _score(s, "predicted_class") is not None
        and s.get(("rakuten_live_feedback_window", ())) == 120
    )
    assert samples[("rakuten_drift_window_predictions", ())] == WINDOW
    _check_drift(samples, reference, normal)
    for spec in FEATURES:
        assert _score(samples, spec.name) <= spec.threshold  # type: ignore[operator]
        assert samples[("rakuten_drift_threshold", (("feature", spec.name),))] == spec.threshold
    quality = classification_metrics(
        truth[::-1] + [10] * 20, predicted[::-1] + [10] * 20, CategoryIndex()
    )
    assert samples[("rakuten_live_feedback_window", ())] == 120
    assert samples[("rakuten_live_accuracy", ())] == pytest.approx(quality["accuracy"])
    assert samples[("rakuten_live_weighted_f1", ())] == pytest.approx(quality["weighted_f1"])
    assert samples[("rakuten_monitor_last_success_timestamp_seconds", ())] > BASE.timestamp()

    # a shifted window: the drift scores cross their thresholds
    shifted = draw_features(rng, WINDOW, shift=True)
    add_predictions(url, shifted, start=BASE + timedelta(hours=2))
    samples = monitor.wait_for(
        lambda s: (_score(s, "predicted_class") or 0) > 0.2 and (_score(s, "text_length") or 0)
    )
    _check_drift(samples, reference, shifted)
    for feature in ("predicted_class", "text_length", "image_brightness"):
        threshold = samples[("rakuten_drift_threshold", (("feature", feature),))]
        assert _score(samples, feature) > threshold  # type: ignore[operator]
    report = httpx.get(f"{monitor.url}/report", timeout=10)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Drifted: " in report.text and "predicted_class" in report.text
    assert _runs(samples, "error") == 0 and _runs(samples, "success") >= 3
    return samples


def test_monitor_on_postgres_including_an_outage(
    postgres: PostgresServer, reference: DriftReference, tmp_path: Path
) -> None:
    upgrade(postgres.url)
    bundle = write_bundle_json(tmp_path / "bundle", reference)
    with run_monitor(
        database_url=postgres.url,
        model_path=bundle,
        workdir=tmp_path,
        monitor_window=str(WINDOW),
        monitor_min_predictions=str(MIN_PREDICTIONS),
        monitor_min_feedback=str(MIN_FEEDBACK),
    ) as monitor:
        before = _exercise(monitor, postgres.url, reference)
        postgres.stop()
        try:
            errors = _runs(before, "error")
            during = monitor.wait_for(lambda s: _runs(s, "error") >= errors + 2)
            # still serving, and the last figures are kept (documented choice)
            for spec in FEATURES:
                assert _score(during, spec.name) == _score(before, spec.name)
            assert during[("rakuten_live_accuracy", ())] == before[("rakuten_live_accuracy", ())]
            health = httpx.get(f"{monitor.url}/health", timeout=10).json()
            assert health["status"] == "ok" and health["last_error"]
            assert "OperationalError" in health["last_error"]
        finally:
            postgres.start()
        success = _runs(during, "success")
        after = monitor.wait_for(lambda s: _runs(s, "success") > success)
        assert httpx.get(f"{monitor.url}/health", timeout=10).json()["last_error"] is None
        assert after[("rakuten_drift_window_predictions", ())] == WINDOW
    assert monitor.process.returncode is not None
    assert "monitor run failed, keeping the last figures" in monitor.log.read_text(errors="replace")


def test_monitor_on_sqlite(reference: DriftReference, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    bundle = write_bundle_json(tmp_path / "bundle", reference)
    with run_monitor(
        database_url=url,
        model_path=bundle,
        workdir=tmp_path,
        monitor_window=str(WINDOW),
        monitor_min_predictions=str(MIN_PREDICTIONS),
        monitor_min_feedback=str(MIN_FEEDBACK),
    ) as monitor:
        _exercise(monitor, url, reference)
