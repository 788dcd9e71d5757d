"""The write-ahead journal of prediction records: written before the answer is sent.

:meth:`PredictionRecorder.submit` appends each record, one JSON line, to this process's current
journal segment (``journal-<owner>.<n>.wal`` in the spool directory) with one ``os.write`` on an
``O_APPEND`` descriptor, then queues it. The write is in the operating system's page cache when
it returns, and the page cache outlives the process: a SIGKILL, an out-of-memory kill or a crash
of the server loses no record it answered; the next owner of its files
(:mod:`rakuten_serve.db.owners`) replays the segments like spool files, and the inserts skip the
request ids already written. Segments are not fsynced: a power loss or a kernel crash can still
lose what the kernel had not flushed yet (up to ``vm.dirty_expire_centisecs``, 30 s by default).
An fsync per record was judged too expensive: a disk flush on the event loop before every
answer, 0.2-4 ms measured against 16-18 µs for the encoding and the plain write
(``bench/record_journal.py``; docs/reliability.md).

Segments: a segment is deleted once it is sealed and every record in it is settled, that is
written to the database, appended to the (fsynced) spool, or dropped and counted. The current
segment is sealed when it reaches ``segment_bytes``; also once all its records are settled and
it is older than ``quiet_s``, so a server with little traffic keeps no journal behind; and at
stop. A journal write that fails (full disk) costs that record its durability, never the answer:
the record is queued as before, counted in ``rakuten_prediction_journal_failures_total``, and
one error is logged per run of failures.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)

PATTERN = "journal-*.wal"
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class Journal:
    """This owner's journal segments and, per segment, how many records are not settled."""

    def __init__(
        self,
        directory: Path,
        owner: str,
        *,
        telemetry: Telemetry,
        segment_bytes: int = 1024 * 1024,
        quiet_s: float = 2.0,
    ) -> None:
        self._directory = directory
        self._owner = owner
        self._telemetry = telemetry
        self._segment_bytes = segment_bytes
        self._quiet_s = quiet_s
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._current = 0
        self._size = 0
        self._opened_at = 0.0
        self._unsettled: dict[int, int] = {}
        self._failures = 0

    def path(self, segment: int) -> Path:
        return self._directory / f"journal-{self._owner}.{segment:06d}.wal"

    def append(self, line: bytes) -> int | None:
        """Write ``line`` (a whole record); its segment, or None when the write failed."""
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self.path(self._current), _FLAGS, 0o640)
                    self._size, self._opened_at = 0, time.monotonic()
                written = os.write(self._fd, line)
            except OSError as exc:
                self._failed(exc)
                return None
            self._size += written
            if written < len(line):  # a torn line (disk full): later ones go to a new segment
                self._seal()
                self._failed(OSError(f"{written} of {len(line)} bytes written"))
                return None
            segment = self._current
            self._unsettled[segment] = self._unsettled.get(segment, 0) + 1
            if self._failures:
                logger.warning("journal writes work again after %d failures", self._failures)
                self._failures = 0
            if self._size >= self._segment_bytes:
                self._seal()
            return segment

    def settle(self, segments: Iterable[int | None]) -> None:
        """These records are written, spooled or dropped: their sealed segments may go."""
        with self._lock:
            for segment in segments:
                if segment is None:
                    continue
                left = self._unsettled.get(segment, 0) - 1
                if left > 0 or segment == self._current:
                    self._unsettled[segment] = max(left, 0)
                else:
                    self._delete(segment)

    def seal_if_quiet(self) -> None:
        """Seal (and so delete) the current segment once it is settled and ``quiet_s`` old."""
        with self._lock:
            if (
                self._fd is not None
                and not self._unsettled.get(self._current)
                and time.monotonic() - self._opened_at >= self._quiet_s
            ):
                self._seal()

    def close(self) -> None:
        """Seal; delete every settled segment (those with records left stay, to be replayed)."""
        with self._lock:
            self._seal()
            for segment, left in list(self._unsettled.items()):
                if not left:
                    self._delete(segment)

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if not self._unsettled.get(self._current):
                self._delete(self._current)
            self._current += 1

    def _delete(self, segment: int) -> None:
        self._unsettled.pop(segment, None)
        try:
            self.path(segment).unlink(missing_ok=True)
        except OSError as exc:  # left behind: replayed by the next owner, which is harmless
            logger.warning("journal segment %s not deleted (%s)", self.path(segment), exc)

    def _failed(self, exc: OSError) -> None:
        self._telemetry.journal_write_failed()
        if not self._failures:
            logger.error(
                "prediction record journal not written (%s): records are still queued and "
                "written, but lost if this process dies before then",
                exc,
            )
        self._failures += 1
