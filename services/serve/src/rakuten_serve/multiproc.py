"""Several uvicorn workers behind one port, with metrics that add up across them.

Without this, each scrape of ``/metrics`` answers for whichever worker the kernel handed the
connection to, so counters jump between workers' values and every ``rate()`` is wrong.
prometheus-client's multiprocess mode fixes that: each worker writes its values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. Three things make it correct:

* the directory is in the environment before any worker imports ``prometheus_client`` (the
  value class is chosen at import): the parent sets it, workers inherit it;
* it is wiped when the server starts, or counters would resume from a previous run's files;
* when a worker exits (stopped, crashed or killed), its ``live*`` gauge files are removed with
  ``mark_process_dead`` so its last queue depth or readiness no longer counts. Counters and
  histograms of a dead worker stay: what it counted did happen.

uvicorn's :class:`~uvicorn.supervisors.Multiprocess` supervisor restarts dead workers but has
no exit hook, so :class:`MetricsSupervisor` notices the pids that left after each of its checks.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from socket import socket

from prometheus_client import multiprocess
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from rakuten_serve.telemetry import MULTIPROC_ENV

__all__ = ["MULTIPROC_ENV", "MetricsSupervisor", "multiprocess_metrics_dir", "run_workers"]
logger = logging.getLogger(__name__)


@contextmanager
def multiprocess_metrics_dir() -> Iterator[Path]:
    """Set up ``PROMETHEUS_MULTIPROC_DIR`` for the workers to inherit, wiped, for the server's life.

    An existing ``PROMETHEUS_MULTIPROC_DIR`` (e.g. a tmpfs mounted for it) is used and its
    ``*.db`` files are removed (nothing else there is touched); otherwise a private temporary
    directory is created and deleted at exit.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        created = False
    else:
        directory = Path(tempfile.mkdtemp(prefix="rakuten-serve-metrics-"))
        created = True
    os.environ[MULTIPROC_ENV] = str(directory)
    logger.info("multiprocess metrics in %s", directory)
    try:
        yield directory
    finally:
        if created:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)


class MetricsSupervisor(Multiprocess):
    """uvicorn's worker supervisor, marking every worker that exits as dead for the metrics."""

    def __init__(self, config: Config, sockets: list[socket], metrics_dir: Path) -> None:
        super().__init__(config, sockets=sockets)
        self._metrics_dir = metrics_dir

    def _pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    def _mark_dead(self, pids: set[int]) -> None:
        for pid in pids:
            multiprocess.mark_process_dead(pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
            logger.info("worker %d exited: its live gauges no longer count", pid)

    def keep_subprocess_alive(self) -> None:
        before = self._pids()
        super().keep_subprocess_alive()
        self._mark_dead(before - self._pids())

    def handle_signals(self) -> None:
        # SIGHUP replaces every worker, SIGTTOU retires one.
        before = self._pids()
        super().handle_signals()
        self._mark_dead(before - self._pids())

    def join_all(self) -> None:
        super().join_all()
        self._mark_dead(self._pids())


def run_workers(config: Config, metrics_dir: Path) -> None:
    """What ``uvicorn.run`` does for ``workers > 1``, with :class:`MetricsSupervisor`."""
    sock = config.bind_socket()
    try:
        MetricsSupervisor(config, sockets=[sock], metrics_dir=metrics_dir).run()
    finally:
        sock.close()
