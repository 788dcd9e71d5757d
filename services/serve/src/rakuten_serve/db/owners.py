"""Who owns a file of the record spool directory, and when another process may take it over.

Several processes share one spool directory: the uvicorn workers of a replica, and the replicas
of the compose project, which mount the same ``serve-spool`` volume but each run in a PID
namespace of their own, where the server is PID 1 in every container. A PID alone therefore
says nothing about a file written in another container. Each file name carries its owner,
``<host>-<pid>-<token>`` (the host name with anything but letters, digits and ``_`` replaced by
``_``; the random token tells a restarted container, whose server is PID 1 again, from the one
that died), and each owner keeps a lease, ``lease-<owner>.json``: written at start with the
owner's PID namespace (boot id and namespace inode), touched every second by a thread of its
own, deleted by a clean stop.

An owner is gone, and its files are taken over (renamed, then replayed), when:

- its lease is missing: it stopped cleanly (its spool may hold records if the database was down
  then), or it never got that far;
- its lease was last touched more than ``lease_s`` ago (10 s): the container was killed and not
  restarted, or the process is frozen. This is how a replica takes over the files of another
  one, in any namespace or on any host;
- it runs in this process's PID namespace and its PID is not alive: a worker killed in this
  container is taken over at once, without waiting for its lease to expire.

The lease compares a file time set by the owner's kernel with this one's clock: on one Docker
host they are the same clock; on a network file system the hosts' clocks must agree to well
under ``lease_s``. An owner frozen for longer than the lease (``docker pause``) is judged gone:
its records are then written twice, which the inserts skip, and only what it appends to a taken
file after it resumes is at risk, should it also die before writing it. Files named before
leases existed (``predictions-<pid>-<token>.jsonl``) keep that version's rule: taken when the
PID is not alive here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

from rakuten_serve.reload_board import pid_alive

logger = logging.getLogger(__name__)

LEASE_S = 10.0
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def new_owner() -> str:
    """This process's owner id for a new recorder: ``<host>-<pid>-<token>``."""
    host = _HOST_UNSAFE.sub("_", socket.gethostname())[:63] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owner_of(name: str) -> str:
    """The owner in a spool directory file name: between the first ``-`` and the first ``.``."""
    return name.partition("-")[2].split(".", 1)[0]


def pid_namespace() -> str | None:
    """This process's PID namespace, unique among the live ones of every host (Linux only)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


def _gone(directory: Path, owner: str, *, lease_s: float, namespace: str | None) -> bool:
    parts = owner.split("-")
    if len(parts) == 2:  # a file of the version before leases: its PID rule
        pid = int(parts[0]) if parts[0].isdigit() else None
        return pid is None or pid == os.getpid() or not pid_alive(pid)
    lease = directory / f"lease-{owner}.json"
    try:
        if time.time() - lease.stat().st_mtime > lease_s:
            return True
        info = json.loads(lease.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True
    except (OSError, ValueError):  # being rewritten: fresh, so the owner lives
        return False
    pid = info.get("pid")
    return (
        namespace is not None
        and info.get("pidns") == namespace
        and isinstance(pid, int)
        and pid != os.getpid()
        and not pid_alive(pid)
    )


def claimable(
    directory: Path, me: str, patterns: tuple[str, ...], *, lease_s: float = LEASE_S
) -> list[Path]:
    """Files matching ``patterns`` whose owner is gone (not ``me``); gone owners' leases go."""
    namespace = pid_namespace()
    verdicts: dict[str, bool] = {}

    def gone(owner: str) -> bool:
        if owner not in verdicts:
            verdicts[owner] = owner != me and _gone(
                directory, owner, lease_s=lease_s, namespace=namespace
            )
        return verdicts[owner]

    found = [p for pattern in patterns for p in sorted(directory.glob(pattern))]
    taken = [p for p in found if gone(owner_of(p.name))]
    for lease in directory.glob("lease-*.json"):
        if gone(owner_of(lease.name)):
            lease.unlink(missing_ok=True)
    return taken


class Lease:
    """This owner's lease file, touched every ``interval_s`` by a daemon thread."""

    def __init__(self, directory: Path, owner: str, *, interval_s: float = 1.0) -> None:
        self.path = directory / f"lease-{owner}.json"
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._write()
        except OSError as exc:  # an unwritable folder: the beat retries; serving goes on
            logger.error("record lease %s not written (%s)", self.path, exc)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._beat, name="record-lease", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool) -> None:
        """Stop touching the lease; ``release`` deletes it (every file of the owner is final)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if release:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:  # it expires instead
                logger.warning("record lease %s not deleted (%s)", self.path, exc)

    def _write(self) -> None:
        info = {"pid": os.getpid(), "pidns": pid_namespace(), "host": socket.gethostname()}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(info), encoding="utf-8")
        os.replace(temporary, self.path)

    def _beat(self) -> None:
        failing = False
        while not self._stopping.wait(self._interval_s):
            try:
                try:
                    os.utime(self.path)
                except FileNotFoundError:  # taken while this process was frozen: it lives
                    self._write()
            except OSError as exc:
                if not failing:
                    logger.error("record lease %s not renewed (%s)", self.path, exc)
                failing = True
            else:
                failing = False
