"""Server processes the tests start: wait for an HTTP 200, stop them (bounded in time)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_http_ok(
    process: subprocess.Popen[bytes], url: str, *, log_path: Path, timeout_s: float
) -> None:
    """Poll ``url`` until it answers 200; raise with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}: not ready after {timeout_s}s: {log_path.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
