"""Files through which the workers of one replica agree on the model each of them serves.

``rakuten-serve run --workers N`` starts N processes; a ``POST /admin/reload`` reaches one of
them. That worker loads and warms up the new model, then *publishes* it here; every worker
watches the board (:mod:`rakuten_serve.reload_follower`) and loads the same bundle. The board is
a directory (``RAKUTEN_RUN_DIR``, made fresh by ``rakuten-serve run`` for each server) holding:

* ``desired-<role>.json``: the model every worker of the replica should serve for ``role``
  (``champion`` or ``challenger``): the spec that was asked for, the local bundle directory it
  resolved to (followers load those exact files: no second download, no alias moving in
  between), its version and a generation number that only grows;
* ``worker-<pid>.json``: what each worker serves per role: the generation it applied, the model
  version, or the error that kept the old model;
* ``board.lock``: an ``flock`` making "read the generation, write the next" atomic when two
  workers receive a reload at once (the last one wins, and everyone follows it).

Every write goes to a temporary file then ``os.replace``: a reader sees the old or the new
content, never half. A worker that restarts reads ``desired-*.json`` before loading, so it comes
back with the model last published, not the one the server started with. Only models that
loaded and passed their warm-up in the receiving worker are ever published.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

Role = Literal["champion", "challenger"]
ROLES: tuple[Role, ...] = ("champion", "challenger")
RUN_DIR_ENV = "RAKUTEN_RUN_DIR"


@dataclass(frozen=True)
class Desired:
    """The model published for a role."""

    generation: int
    spec: str
    path: str
    model_version: str
    published_by: int
    published_at: str


@dataclass(frozen=True)
class RoleStatus:
    """What one worker did with a role's latest publication."""

    generation: int
    model_version: str | None
    error: str | None = None


@dataclass(frozen=True)
class WorkerStatus:
    pid: int
    roles: dict[str, RoleStatus]


@dataclass(frozen=True)
class WorkerModel:
    """One worker's model for a role after a reload: its version, or why it kept the old one."""

    pid: int
    model_version: str | None
    generation: int
    error: str | None = None


@dataclass(frozen=True)
class Followed:
    """Where every live worker stands after a reload published as ``generation``."""

    generation: int
    workers: list[WorkerModel]

    @property
    def lagging(self) -> list[WorkerModel]:
        """Workers that did not apply the generation (still loading, or failed)."""
        return [w for w in self.workers if w.generation < self.generation or w.error]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live process in this PID namespace (a zombie counts as live)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ReloadBoard:
    """The board of one replica (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _desired_path(self, role: Role) -> Path:
        return self.directory / f"desired-{role}.json"

    def _worker_path(self, pid: int) -> Path:
        return self.directory / f"worker-{pid}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across the replica's processes (blocking ``flock``)."""
        with (self.directory / "board.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- desired models
    def desired(self, role: Role) -> Desired | None:
        data = _read_json(self._desired_path(role))
        return Desired(**data) if data else None

    def desired_stamp(self, role: Role) -> tuple[int, int, int] | None:
        """A cheap change marker (``stat``), so followers parse the file only when it changed.

        The inode is part of it: every publication replaces the file, and two publications
        within the file system's timestamp granularity would otherwise look alike.
        """
        try:
            info = self._desired_path(role).stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def publish(self, role: Role, *, spec: str, path: str, model_version: str) -> Desired:
        """Record the next generation for ``role``; call under :meth:`locked`."""
        previous = self.desired(role)
        desired = Desired(
            generation=(previous.generation if previous else 0) + 1,
            spec=spec,
            path=path,
            model_version=model_version,
            published_by=os.getpid(),
            published_at=datetime.now(UTC).isoformat(),
        )
        _write_json(self._desired_path(role), asdict(desired))
        return desired

    # ---- worker statuses
    def report(self, pid: int, roles: dict[str, RoleStatus]) -> None:
        _write_json(
            self._worker_path(pid),
            {"pid": pid, "roles": {role: asdict(status) for role, status in roles.items()}},
        )

    def forget(self, pid: int) -> None:
        """A worker that exited: it no longer counts among the replica's workers."""
        self._worker_path(pid).unlink(missing_ok=True)

    def followed(self, role: Role, generation: int) -> Followed:
        """Where every live worker stands on ``role`` after publication ``generation``."""
        workers = []
        for status in self.workers():
            got = status.roles.get(role, RoleStatus(0, None))
            workers.append(WorkerModel(status.pid, got.model_version, got.generation, got.error))
        return Followed(generation, workers)

    def workers(self) -> list[WorkerStatus]:
        """The live workers' statuses (files of dead pids are removed on the way)."""
        found: list[WorkerStatus] = []
        for path in sorted(self.directory.glob("worker-*.json")):
            data = _read_json(path)
            if data is None:
                continue
            pid = int(data["pid"])
            if not pid_alive(pid):
                self.forget(pid)
                continue
            roles = {role: RoleStatus(**value) for role, value in data["roles"].items()}
            found.append(WorkerStatus(pid, roles))
        return found


def prepare_run_dir(given: Path | None) -> Path:
    """The replica's board for ``rakuten-serve run``, set in the environment the workers inherit.

    A given directory is cleared of an earlier server's board (a fresh server starts from
    ``RAKUTEN_MODEL_PATH``); otherwise a private temporary directory is made.
    """
    if given is None:
        directory = Path(tempfile.mkdtemp(prefix="rakuten-serve-run-"))
        atexit.register(shutil.rmtree, directory, True)
    else:
        directory = given
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (*directory.glob("desired-*.json"), *directory.glob("worker-*.json")):
            stale.unlink(missing_ok=True)
    os.environ[RUN_DIR_ENV] = str(directory)
    logger.info("reload board in %s", directory)
    return directory
