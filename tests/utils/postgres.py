"""A throw-away PostgreSQL server (initdb + pg_ctl) on a free loopback port.

Runs the server binaries as the ``postgres`` system user when the tests run as root (initdb
refuses root). ``stop()``/``start()`` keep the data directory, so a test can take the database
down and bring it back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        pytest.skip(f"{name} not installed (scripts/system-deps.sh installs PostgreSQL)")
    return str(candidates[-1])


class PostgresServer:
    def __init__(self, user: str = "rakuten") -> None:
        self.port = free_port()
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="rakuten-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [
                _binary("initdb"),
                "-D",
                str(self.data),
                "-U",
                user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            timeout=120,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str, *, driver: str = "psycopg") -> str:
        """A new database ``name`` on the running server; its URL with ``driver``."""
        self._run(
            [_binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
            timeout=60,
        )
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{name}"

    def _run(self, cmd: list[str], timeout: float) -> None:
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {result.stdout}\n{result.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            [
                _binary("pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            timeout=90,
        )

    def stop(self) -> None:
        self._run(
            [_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"],
            timeout=90,
        )

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        try:
            if self.is_running():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer`, closed (data directory removed) on exit."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")
