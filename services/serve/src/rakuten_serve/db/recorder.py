"""Prediction records written in the background, never lost to a brief database outage.

The request path only puts a record on a bounded in-memory queue (no I/O). One writer thread
inserts queued records in batches. When a write fails the batch is appended to a JSON-lines
spool file (``RAKUTEN_RECORD_SPOOL_DIR``, one file per process) and retried with exponential
backoff; while the spool holds records, new ones go behind them, so order is kept. A spool file
left by a process that died is replayed by the next one. Inserts skip request ids already
present (``ON CONFLICT DO NOTHING``, :mod:`rakuten_serve.db.inserts`), so neither a replay after a
partial failure nor a request the proxy retried on another replica (same ``X-Request-ID``,
recorded by both) duplicates a row: the first write wins. Only when the in-memory
queue and the spool (``RAKUTEN_RECORD_SPOOL_MAX_BYTES``) are both full is a record dropped,
counted in ``rakuten_prediction_records_dropped``.

Before it is queued, a record is appended to this process's write-ahead journal in the same
directory (:mod:`rakuten_serve.db.journal`: one ``os.write``, no fsync), so a process killed
with records still in memory loses none of the answers it sent: its journal is replayed like a
spool file. Every file names its owner, and a process takes over (renames, then replays) the
files of owners that are gone (:mod:`rakuten_serve.db.owners`): at start, then every
``lease_s / 2`` seconds, so a replica sharing the volume takes over the files of one killed and
not restarted. A clean stop leaves no journal behind: everything is written or spooled by then.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from rakuten_core.records import Prediction
from rakuten_serve.db import journal, owners
from rakuten_serve.db.inserts import insert_new
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)

Record = dict[str, Any]
Entry = tuple[int | None, Record]  # (journal segment, record) on the queue
_PENDING_MAX = 100_000
_STOP = object()


def _encode(record: Record) -> str:
    out = dict(record)
    out["created_at"] = record["created_at"].isoformat()
    return json.dumps(out, ensure_ascii=False)


def _decode(line: str) -> Record:
    record: Record = json.loads(line)
    record["created_at"] = datetime.fromisoformat(record["created_at"])
    return record


def _decode_all(lines: list[str], path: Path) -> list[Record]:
    """The records of a spool file or journal segment; a torn line (a write cut short by a
    kill or a full disk, never answered) is skipped."""
    records: list[Record] = []
    for line in lines:
        if line.strip():
            try:
                records.append(_decode(line))
            except (ValueError, KeyError, TypeError):
                logger.warning("skipped an unreadable line of %s", path.name)
    return records


class PredictionRecorder:
    """Background writer of prediction records (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        telemetry: Telemetry,
        spool_dir: Path,
        queue_size: int = 10_000,
        batch_size: int = 200,
        spool_max_bytes: int = 512 * 1024 * 1024,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        journal_enabled: bool = True,
        journal_segment_bytes: int = 1024 * 1024,
        lease_s: float = owners.LEASE_S,
    ) -> None:
        self._engine = engine
        self._telemetry = telemetry
        self._spool_dir = spool_dir
        self._owner = owners.new_owner()
        self._spool = spool_dir / f"predictions-{self._owner}.jsonl"
        self._lease = owners.Lease(spool_dir, self._owner)
        self._lease_s = lease_s
        self._next_claim = 0.0
        self._journal_enabled = journal_enabled
        self._journal_segment_bytes = journal_segment_bytes
        self._journal: journal.Journal | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._spool_max_bytes = spool_max_bytes
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._backoff_s = retry_initial_s
        self._next_retry = 0.0
        self._spool_lock = threading.Lock()
        self._pending: OrderedDict[str, Record] = OrderedDict()
        self._pending_lock = threading.Lock()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        # Whether spool files may exist: only this process writes its spool and adopts orphans
        # (at start), so the writer loop need not list the directory on every batch.
        self._spool_present = False

    # ---- API used by the app
    def start(self) -> None:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        self._lease.start()  # before any file of this owner exists
        if self._journal_enabled:
            self._journal = journal.Journal(
                self._spool_dir,
                self._owner,
                telemetry=self._telemetry,
                segment_bytes=self._journal_segment_bytes,
            )
        self._claim_orphans()
        self._thread = threading.Thread(target=self._run, name="prediction-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (or spool it when the database is down), then stop.

        The journal's settled segments and the lease go; if the writer did not finish in time,
        what it still holds stays in the journal and the lease expires, for the next owner.
        """
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        finished = not self._thread.is_alive()
        self._thread = None
        if self._journal is not None:
            self._journal.close()
        self._lease.stop(release=finished)

    def submit(self, record: Record) -> None:
        """Journal and queue ``record`` without blocking (spooled if the queue is full)."""
        self._remember(record)
        segment = None
        if self._journal is not None:
            segment = self._journal.append((_encode(record) + "\n").encode("utf-8"))
        try:
            self._queue.put_nowait((segment, record))
        except queue.Full:
            self._append_spool([record])
            self._settle([segment])
        self._idle.clear()

    def pending(self, request_id: str) -> Record | None:
        """A record submitted by this process and not yet confirmed written."""
        with self._pending_lock:
            return self._pending.get(request_id)

    @property
    def backlog(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once everything submitted is in the database (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.backlog == 0 and self._queue.empty() and not self._spool_files():
                return True
            time.sleep(0.05)
        return False

    # ---- writer thread
    def _run(self) -> None:
        stopping = False
        while True:
            entries, stopping = self._take(stopping)
            if time.monotonic() >= self._next_claim:
                self._claim_orphans()
            if self._spool_files() and time.monotonic() >= self._next_retry:
                self._replay()
            if entries:
                batch = [record for _, record in entries]
                if self._spool_files():
                    self._append_spool(batch)
                else:
                    try:
                        self._write(batch)
                    except Exception as exc:  # any DB error: keep the records, retry later
                        self._failed(exc)
                        self._append_spool(batch)
                self._settle(segment for segment, _ in entries)
            if self._journal is not None:
                self._journal.seal_if_quiet()
            if stopping and self._queue.empty():
                if self._spool_files():
                    self._replay()
                return

    def _settle(self, segments: Iterable[int | None]) -> None:
        if self._journal is not None:
            self._journal.settle(segments)

    def _take(self, stopping: bool) -> tuple[list[Entry], bool]:
        batch: list[Entry] = []
        timeout = 0.2 if self._spool_files() else 1.0
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, stopping
        while True:
            if item is _STOP:
                stopping = True
            else:
                batch.append(item)  # type: ignore[arg-type]
            if len(batch) >= self._batch_size:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return batch, stopping

    def _write(self, records: list[Record]) -> None:
        # Core inserts (one executemany per set of columns), not ORM objects: a unit of work
        # per record cost ~2 ms of GIL-holding CPU per prediction under load, taken from the
        # event loop (docs/performance.md).
        ids = [r["request_id"] for r in records]
        fresh: dict[str, Record] = {}
        for record in records:
            fresh.setdefault(record["request_id"], record)
        by_columns: dict[tuple[str, ...], list[Record]] = {}
        for record in fresh.values():  # records spooled by an older version may lack a column
            by_columns.setdefault(tuple(sorted(record)), []).append(record)
        written = 0
        with self._engine.begin() as connection:
            for rows in by_columns.values():
                written += len(insert_new(connection, Prediction, rows))
        self._telemetry.records_written(written)
        if written < len(fresh):
            logger.info(
                "%d prediction records were in the database already (a replay, or a request "
                "retried on another replica)",
                len(fresh) - written,
            )
        self._forget(ids)
        self._backoff_s = self._retry_initial_s

    def _failed(self, exc: Exception) -> None:
        self._telemetry.db_write_failed()
        self._next_retry = time.monotonic() + self._backoff_s
        logger.warning(
            "prediction records not written (%s); retrying in %.1fs",
            type(exc).__name__,
            self._backoff_s,
        )
        self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)

    def _replay(self) -> None:
        for path in self._spool_files():
            with self._spool_lock:
                try:
                    lines = path.read_text(encoding="utf-8").splitlines()
                except FileNotFoundError:
                    continue
                records = _decode_all(lines, path)
                try:
                    for start in range(0, len(records), self._batch_size):
                        self._write(records[start : start + self._batch_size])
                except Exception as exc:  # still down: keep the file, back off
                    self._failed(exc)
                    return
                path.unlink(missing_ok=True)
                logger.info("replayed %d spooled prediction records from %s", len(records), path)

    # ---- spool files
    def _spool_files(self) -> list[Path]:
        with self._spool_lock:  # against an append setting the flag between glob and reset
            if not self._spool_present:
                return []
            own = [self._spool] if self._spool.exists() else []
            claimed = sorted(self._spool_dir.glob(f"{self._spool.stem}.orphan-*.jsonl"))
            if not own and not claimed:
                self._spool_present = False
            return claimed + own

    def _append_spool(self, records: list[Record]) -> None:
        with self._spool_lock:
            size = self._spool.stat().st_size if self._spool.exists() else 0
            if size >= self._spool_max_bytes:
                self._telemetry.records_dropped(len(records))
                self._forget([r["request_id"] for r in records])
                logger.error(
                    "spool %s is full: %d prediction records lost", self._spool, len(records)
                )
                return
            self._spool_present = True
            with self._spool.open("a", encoding="utf-8") as handle:
                for record in records:
                    handle.write(_encode(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _claim_orphans(self) -> None:
        """Adopt the spool files and journal segments of owners that are gone (a crash, a kill,
        a replica scaled away): renamed as this owner's, replayed by the writer."""
        self._next_claim = time.monotonic() + self._lease_s / 2
        patterns = ("predictions-*.jsonl", journal.PATTERN)
        try:
            found = owners.claimable(self._spool_dir, self._owner, patterns, lease_s=self._lease_s)
        except OSError as exc:
            logger.warning("spool directory not scanned (%s)", exc)
            return
        for path in found:
            target = self._spool_dir / f"{self._spool.stem}.orphan-{uuid.uuid4().hex[:8]}.jsonl"
            try:
                os.rename(path, target)
            except OSError:  # another process took it first
                continue
            with self._spool_lock:
                self._spool_present = True
            logger.info("adopted prediction records %s", path.name)

    # ---- pending index (feedback may refer to a record not yet written)
    def _remember(self, record: Record) -> None:
        with self._pending_lock:
            self._pending[record["request_id"]] = record
            while len(self._pending) > _PENDING_MAX:
                self._pending.popitem(last=False)
            self._telemetry.records_pending(len(self._pending))

    def _forget(self, ids: list[str]) -> None:
        with self._pending_lock:
            for rid in ids:
                self._pending.pop(rid, None)
            self._telemetry.records_pending(len(self._pending))
