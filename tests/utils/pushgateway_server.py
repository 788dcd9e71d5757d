"""A throw-away ``prometheus-pushgateway`` (Debian package) on a free loopback port.

The real gateway, not a stand-in: tests push through ``prometheus_client`` exactly as the jobs
do and read back what Prometheus would scrape from its ``/metrics``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.postgres import free_port

START_TIMEOUT_S = 30.0


@contextmanager
def pushgateway(workdir: Path, *, web_config: Path | None = None) -> Iterator[str]:
    """Run a Pushgateway for the block; yields its base URL (``http://127.0.0.1:<port>``).

    With ``web_config`` (exporter-toolkit's web configuration: basic-auth users) every request
    needs a user, the readiness probe aside (it sees the 401 that proves the gateway is up).
    """
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway not installed (scripts/system-deps.sh installs it)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "pushgateway.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--persistence.file={workdir / 'pushgateway.data'}",
                *([f"--web.config.file={web_config}"] if web_config else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for _ in range(int(START_TIMEOUT_S / 0.1)):
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and asking for its user
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pytest.fail(f"pushgateway did not become ready: {log_path.read_text()}")


def job_samples(
    url: str, job: str, *, auth: tuple[str, str] | None = None
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples the gateway exposes for ``job``: metric name -> [(labels, value), ...]."""
    request = urllib.request.Request(f"{url}/metrics")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode("utf-8")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") == job:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    """The one value of ``name`` in ``samples`` (fails when absent or repeated)."""
    values = samples.get(name, [])
    assert len(values) == 1, f"{name}: expected one sample, got {values}"
    return values[0][1]
