"""A real ``mlflow server`` on a free loopback port, SQLite backend and artifacts in a temp dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.utils.postgres import free_port
from tests.utils.processes import stop_process, wait_http_ok


@contextmanager
def mlflow_server(root: Path, *, timeout_s: float = 900) -> Iterator[str]:
    """Run the server for the block; yields its URL (``http://127.0.0.1:<port>``)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
                "--artifacts-destination", str(root / "artifacts"),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(process, f"{url}/health", log_path=log_path, timeout_s=timeout_s)
            yield url
        finally:
            stop_process(process)
