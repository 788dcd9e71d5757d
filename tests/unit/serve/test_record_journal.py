"""The records journal: a killed process loses no answered record; ownership of shared files."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from rakuten_core.records import Prediction
from rakuten_serve.db import owners
from rakuten_serve.db.engine import build_engine
from rakuten_serve.db.journal import Journal
from rakuten_serve.db.migrate import upgrade
from rakuten_serve.db.recorder import PredictionRecorder
from rakuten_serve.telemetry import Telemetry
from tests.utils.prom_text import sample_value
from tests.utils.recorder_process import kill, prediction_record, recorder_process
from tests.utils.serve_app import bearer, get_token

IDS = [f"killed-{i:04d}" for i in range(50)]


class CountingTelemetry(Telemetry):
    def __init__(self) -> None:
        self.journal_failures = 0

    def journal_write_failed(self) -> None:
        self.journal_failures += 1


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = build_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def locked(tmp_path: Path, url: str) -> Iterator[sqlite3.Connection]:
    """The database with its write lock held: inserts wait (15 s busy timeout) until unlock."""
    connection = sqlite3.connect(tmp_path / "serve.db", isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    yield connection
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.close()


def _ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.scalars(select(Prediction.request_id)))


def _recorder(engine: Engine, spool: Path, **options: Any) -> PredictionRecorder:
    return PredictionRecorder(engine, telemetry=Telemetry(), spool_dir=spool, **options)


def _files(spool: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in spool.glob(pattern))


@pytest.mark.slow  # a child interpreter: 3-6 s
@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
def test_records_of_a_killed_process_are_replayed_once(
    journal: bool, tmp_path: Path, url: str, engine: Engine, locked: sqlite3.Connection
) -> None:
    """Without the journal the same kill loses the records: the setup does hold them in memory."""
    spool = tmp_path / "spool"
    with recorder_process(url, spool, IDS, journal=journal) as child:
        kill(child)
    assert bool(_files(spool, "journal-*.wal")) is journal
    locked.execute("ROLLBACK")
    recorder = _recorder(engine, spool)
    recorder.start()
    try:
        assert recorder.wait_idle(20)
    finally:
        recorder.stop()
    assert _ids(engine) == (IDS if journal else [])
    assert _files(spool, "*") == []  # the dead owner's journal and lease are gone, and ours


@pytest.mark.slow  # a child interpreter and two lease scans: 6-12 s
def test_a_live_process_keeps_its_journal_until_it_is_killed(
    tmp_path: Path, url: str, engine: Engine, locked: sqlite3.Connection
) -> None:
    spool = tmp_path / "spool"
    recorder = _recorder(engine, spool, lease_s=3.0)  # its scan every 1.5 s
    with recorder_process(url, spool, IDS) as child:
        recorder.start()
        try:
            time.sleep(2)  # its start and one periodic scan
            theirs = _files(spool, "journal-*.wal")
            assert theirs and all(str(child.pid) in name for name in theirs)
            assert not _files(spool, "*.orphan-*"), "a live process's journal was taken"
            kill(child)
            locked.execute("ROLLBACK")
            deadline = time.monotonic() + 20
            while _ids(engine) != IDS:  # taken at its next scan (the PID is dead), then replayed
                assert time.monotonic() < deadline, "the killed process's journal was not replayed"
                time.sleep(0.1)
            assert recorder.wait_idle(10)
        finally:
            recorder.stop()
    assert _ids(engine) == IDS
    assert _files(spool, "*") == []


def _foreign_owner(spool: Path, *, pid: int, pidns: str, age_s: float) -> str:
    """The journal and lease of a replica in another container (``pidns``), lease ``age_s`` old."""
    owner = f"otherhost-{pid}-0badcafe"
    spool.mkdir(parents=True, exist_ok=True)
    written = "2024-05-01T12:00:00+00:00"
    lines = [json.dumps(prediction_record(f"foreign-{i}", created_at=written)) for i in range(3)]
    (spool / f"journal-{owner}.000003.wal").write_text("\n".join(lines) + "\n")
    lease = spool / f"lease-{owner}.json"
    lease.write_text(json.dumps({"pid": pid, "pidns": pidns, "host": "otherhost"}))
    touched = time.time() - age_s
    os.utime(lease, (touched, touched))
    return owner


def test_another_containers_files_are_taken_once_its_lease_expires(
    tmp_path: Path, engine: Engine
) -> None:
    """PID 1 is alive here too: across namespaces only the lease decides."""
    spool = tmp_path / "spool"
    owner = _foreign_owner(spool, pid=1, pidns="another-boot/4026532000", age_s=0)
    recorder = _recorder(engine, spool, lease_s=3.0)  # nobody touches that lease: 3 s from now
    recorder.start()
    try:
        time.sleep(0.5)
        assert _files(spool, f"journal-{owner}.*") and _ids(engine) == []
        deadline = time.monotonic() + 10
        while _ids(engine) != ["foreign-0", "foreign-1", "foreign-2"]:
            assert time.monotonic() < deadline, "the expired lease's journal was not replayed"
            time.sleep(0.1)
    finally:
        recorder.stop()
    assert _files(spool, "*") == []


def test_a_live_pid_of_this_namespace_keeps_its_files(tmp_path: Path, engine: Engine) -> None:
    spool = tmp_path / "spool"
    namespace = owners.pid_namespace()
    if namespace is None:
        pytest.skip("no /proc: PID namespaces are not told apart")
    _foreign_owner(spool, pid=os.getppid(), pidns=namespace, age_s=0)
    assert owners.claimable(spool, "me-1-00000000", ("journal-*.wal",)) == []
    dead = _foreign_owner(spool, pid=2**22 + 1, pidns=namespace, age_s=0)  # above pid_max
    taken = owners.claimable(spool, "me-1-00000000", ("journal-*.wal",))
    assert [p.name for p in taken] == [f"journal-{dead}.000003.wal"]
    assert not (spool / f"lease-{dead}.json").exists()


def test_a_clean_stop_leaves_no_journal(tmp_path: Path, engine: Engine) -> None:
    spool = tmp_path / "spool"
    recorder = _recorder(engine, spool)
    recorder.start()
    for request_id in IDS[:10]:
        recorder.submit(prediction_record(request_id))
    assert _files(spool, "journal-*.wal")  # written before submit returned
    assert recorder.wait_idle(10)
    recorder.stop()
    assert _ids(engine) == IDS[:10]
    assert _files(spool, "*") == []


def test_a_stop_with_the_database_down_keeps_the_spool_only(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    down = build_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema: every insert fails
    recorder = _recorder(down, spool, retry_initial_s=60.0)
    recorder.start()
    for request_id in IDS[:10]:
        recorder.submit(prediction_record(request_id))
    recorder.stop()
    down.dispose()
    [spooled] = _files(spool, "*")
    assert spooled.startswith("predictions-") and spooled.endswith(".jsonl")
    assert len((spool / spooled).read_text().splitlines()) == 10


def test_segments_rotate_and_go_once_settled(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "h-1-00000000", telemetry=Telemetry(), segment_bytes=90)
    line = b'{"request_id": "' + b"x" * 30 + b'"}\n'  # 49 bytes: two per segment
    segments = [journal.append(line) for _ in range(5)]
    assert segments == [0, 0, 1, 1, 2]
    assert _files(tmp_path, "*") == [journal.path(i).name for i in range(3)]
    journal.settle(segments[:3])
    assert _files(tmp_path, "*") == [journal.path(i).name for i in (1, 2)]
    journal.settle(segments[3:])
    assert _files(tmp_path, "*") == [journal.path(2).name]  # current, until quiet or stop
    journal.seal_if_quiet()
    assert _files(tmp_path, "*") == [journal.path(2).name]  # not 2 s old yet
    journal.close()
    assert _files(tmp_path, "*") == []


def test_a_recorder_keeps_one_segment_on_disk_under_steady_writes(
    tmp_path: Path, engine: Engine
) -> None:
    spool = tmp_path / "spool"
    recorder = _recorder(engine, spool, journal_segment_bytes=2000)
    recorder.start()
    try:
        for request_id in IDS:
            recorder.submit(prediction_record(request_id))
        assert recorder.wait_idle(10)
        time.sleep(0.3)  # the writer settles just after the insert that wait_idle sees
        [current] = _files(spool, "journal-*.wal")  # the sealed ones are gone
        assert int(current.split(".")[1]) >= 5  # ~400 bytes a record: rotated every ~5
    finally:
        recorder.stop()
    assert _ids(engine) == IDS


def test_a_failed_journal_write_is_counted_logged_once_and_still_recorded(
    tmp_path: Path,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = tmp_path / "spool"
    telemetry = CountingTelemetry()
    recorder = PredictionRecorder(engine, telemetry=telemetry, spool_dir=spool)
    recorder.start()
    try:
        with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
            patch.setattr(Journal, "path", lambda _, n: tmp_path / "full" / f"{n}.wal")
            for request_id in IDS[:5]:
                recorder.submit(prediction_record(request_id))  # does not raise
        recorder.submit(prediction_record(IDS[5]))
        assert recorder.wait_idle(10)
    finally:
        recorder.stop()
    assert telemetry.journal_failures == 5
    errors = [r for r in caplog.records if "journal not written" in r.getMessage()]
    assert len(errors) == 1
    assert _ids(engine) == IDS[:6]


@pytest.mark.slow
def test_predict_answers_when_the_journal_cannot_be_written(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Journal, "path", lambda _, n: tmp_path / "full" / f"{n}.wal")
    response = client.post(
        "/predict", headers=bearer(get_token(client)), data={"designation": "Livre"}
    )
    assert response.status_code == 200
    state = client.app.state.serve  # type: ignore[attr-defined]
    assert state.recorder.wait_idle(10)
    metrics = client.get("/metrics").text
    assert sample_value(metrics, "rakuten_prediction_journal_failures_total") == 1
    with Session(state.engine) as session:
        assert session.scalar(select(Prediction.request_id)) == response.json()["request_id"]
