"""A recorder killed while PostgreSQL holds its inserts: its journal is replayed, each record once.

The table is locked (``ACCESS EXCLUSIVE``) while a child process submits records, so they are in
its memory (a batch waiting on the lock, the rest queued) and its journal only when it gets
SIGKILL; a new recorder on the same spool folder takes the journal over and writes every record
once, skipping the one already in the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from rakuten_core.records import Prediction
from rakuten_serve.db.engine import build_engine
from rakuten_serve.db.inserts import insert_new
from rakuten_serve.db.migrate import upgrade
from rakuten_serve.db.recorder import PredictionRecorder
from rakuten_serve.telemetry import Telemetry
from tests.utils.postgres import PostgresServer, running_postgres
from tests.utils.recorder_process import kill, prediction_record, recorder_process

pytestmark = [pytest.mark.slow, pytest.mark.integration]

IDS = [f"killed-pg-{i:04d}" for i in range(100)]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def test_a_recorder_killed_with_its_inserts_blocked_loses_no_record(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    upgrade(postgres.url)
    engine = build_engine(postgres.url)
    spool = tmp_path / "spool"
    try:
        with engine.begin() as connection:  # written before the kill: the replay skips it
            insert_new(connection, Prediction, [prediction_record(IDS[0])])
        with engine.connect() as lock:
            lock.execute(text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
            with recorder_process(postgres.url, spool, IDS) as child:
                kill(child)
            lock.rollback()
        assert list(spool.glob("journal-*.wal"))
        recorder = PredictionRecorder(engine, telemetry=Telemetry(), spool_dir=spool)
        recorder.start()
        try:
            assert recorder.wait_idle(30)
        finally:
            recorder.stop()
        with engine.connect() as connection:
            counts = dict(
                connection.execute(
                    select(Prediction.request_id, func.count()).group_by(Prediction.request_id)
                ).all()
            )
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(IDS, 1)
    assert not list(spool.iterdir())
