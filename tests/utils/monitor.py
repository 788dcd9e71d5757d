"""Helpers for the monitor's tests: a bundle.json with a reference, records, a live monitor.

Records are written through the shared table definitions (``rakuten_core.records``) into a
database migrated by serve's own Alembic migrations, i.e. as serve writes them. The monitor runs
as a real ``rakuten-monitor serve-metrics`` process on a free loopback port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from rakuten_core.bundle import METADATA_FILE, BundleMetadata
from rakuten_core.categories import CATEGORIES
from rakuten_core.drift import DriftReference, ProductFeatures
from rakuten_core.records import Feedback, Prediction, feature_columns
from tests.utils.bundle_metadata import held_out_metrics, text_settings
from tests.utils.postgres import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def write_bundle_json(
    folder: Path,
    reference: DriftReference | dict[str, object],
    *,
    model_version: str = "monitor-test-1",
) -> Path:
    """A bundle directory's ``bundle.json`` (the only file the monitor reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = reference.model_dump(mode="json") if isinstance(reference, DriftReference) else reference
    meta = BundleMetadata(
        model_version=model_version,
        categories=list(CATEGORIES),
        image_size=32,
        text=text_settings(),
        metrics=held_out_metrics(),
        reference=raw,
    )
    (folder / METADATA_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    return folder


def add_predictions(
    url: str,
    rows: Sequence[ProductFeatures],
    *,
    start: datetime | None = None,
    model_version: str = "monitor-test-1",
) -> list[str]:
    """Insert one prediction per row, one second apart from ``start``; returns request ids."""
    t0 = start or datetime.now(UTC)
    ids = [uuid.uuid4().hex for _ in rows]
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            for i, (rid, features) in enumerate(zip(ids, rows, strict=True)):
                session.add(
                    Prediction(
                        request_id=rid,
                        username="alice",
                        created_at=t0 + timedelta(seconds=i),
                        model_name="rakuten-multimodal",
                        model_version=model_version,
                        designation="produit",
                        description=None,
                        prdtypecode=features.prdtypecode,
                        probability=features.probability,
                        top_k=[],
                        latency_ms=5.0,
                        **feature_columns(features),
                    )
                )
    finally:
        engine.dispose()
    return ids


def add_feedback(
    url: str, pairs: Sequence[tuple[int, int]], *, start: datetime | None = None
) -> None:
    """Insert (true, predicted) feedback rows, one second apart from ``start``."""
    t0 = start or datetime.now(UTC)
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            for i, (true, predicted) in enumerate(pairs):
                session.add(
                    Feedback(
                        request_id=uuid.uuid4().hex,
                        username="alice",
                        true_prdtypecode=true,
                        predicted_prdtypecode=predicted,
                        correct=true == predicted,
                        created_at=t0 + timedelta(seconds=i),
                    )
                )
    finally:
        engine.dispose()


def parse_metrics(text: str) -> Samples:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


class MonitorProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def scrape(self) -> Samples:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return parse_metrics(response.text)

    def wait_for(self, predicate: object, timeout_s: float = 120.0) -> Samples:
        """Scrape until ``predicate(samples)`` holds (bounded in time); the last samples."""
        deadline = time.monotonic() + timeout_s
        samples: Samples = {}
        while time.monotonic() < deadline:
            samples = self.scrape()
            if predicate(samples):  # type: ignore[operator]
                return samples
            time.sleep(0.2)
        raise AssertionError(f"condition not met in {timeout_s}s; last scrape: {samples}")


@contextmanager
def run_monitor(
    *, database_url: str, model_path: Path, workdir: Path, **settings: str
) -> Iterator[MonitorProcess]:
    """``rakuten-monitor serve-metrics`` on a free port until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "RAKUTEN_DATABASE_URL": database_url,
        "RAKUTEN_MONITOR_MODEL_PATH": str(model_path),
        "RAKUTEN_MONITOR_HOST": "127.0.0.1",
        "RAKUTEN_MONITOR_PORT": str(port),
        "RAKUTEN_MONITOR_INTERVAL_S": "0.5",
        "RAKUTEN_LOG_DIR": str(workdir / "logs"),
        **{f"RAKUTEN_{k.upper()}": v for k, v in settings.items()},
    }
    log = workdir / "monitor.out"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "rakuten_monitor", "serve-metrics"],
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    monitor = MonitorProcess(process, port, log)
    try:
        deadline = time.monotonic() + 240  # imports take seconds, more on a busy CI
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"monitor exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{monitor.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"monitor not up in 240s: {log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield monitor
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
