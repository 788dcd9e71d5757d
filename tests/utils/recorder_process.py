"""A prediction recorder in a child process, killed while its records are still in memory.

The child (``spawn``: a fresh interpreter, as a server process would be) starts a
:class:`~rakuten_serve.db.recorder.PredictionRecorder` on the given database and spool folder,
submits one record per request id, tells the parent, then waits to be killed. With a database
that blocks writes (a table lock held by the test), every record is then in the child's memory
and journal only: what a SIGKILL of a serving process leaves behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any


def prediction_record(request_id: str, **overrides: Any) -> dict[str, Any]:
    """A record as the ``/predict`` handler submits it."""
    return {
        "request_id": request_id,
        "username": "alice",
        "created_at": datetime.now(UTC),
        "model_name": "m",
        "model_version": "1",
        "designation": "Piscine ronde",
        "description": None,
        "productid": None,
        "imageid": None,
        "image_sha256": None,
        "image_bytes": None,
        "prdtypecode": 2583,
        "probability": 0.9,
        "top_k": [{"prdtypecode": 2583, "probability": 0.9}],
        "latency_ms": 12.5,
    } | overrides


def _child(url: str, spool_dir: str, ids: Sequence[str], journal: bool, ready: Event) -> None:
    from rakuten_serve.db.engine import build_engine  # noqa: PLC0415
    from rakuten_serve.db.recorder import PredictionRecorder  # noqa: PLC0415
    from rakuten_serve.telemetry import Telemetry  # noqa: PLC0415

    recorder = PredictionRecorder(
        build_engine(url),
        telemetry=Telemetry(),
        spool_dir=Path(spool_dir),
        journal_enabled=journal,
        batch_size=10,
    )
    recorder.start()
    for request_id in ids:
        recorder.submit(prediction_record(request_id))
    ready.set()
    time.sleep(600)


@contextmanager
def recorder_process(
    url: str, spool_dir: Path, ids: Sequence[str], *, journal: bool = True
) -> Iterator[BaseProcess]:
    """The child, once it has submitted ``ids``; killed on the way out if still alive."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(
        target=_child, args=(url, str(spool_dir), list(ids), journal, ready), daemon=True
    )
    process.start()
    try:
        assert ready.wait(120), "the child recorder did not submit its records"
        yield process
    finally:
        if process.is_alive():
            kill(process)


def kill(process: BaseProcess) -> None:
    """SIGKILL, then reap it, so that its PID is no longer alive."""
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
