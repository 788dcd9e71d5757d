"""The BentoML peer (``bench/bentoml/service.py``) in a subprocess, for the serving benchmark.

``bentoml serve`` from its own environment (``.venv-bentoml``, made by
``bench/bentoml/setup.sh``: BentoML's pins conflict with ``uv.lock``) on a free loopback port,
configured through ``RAKUTEN_BENTO_*`` variables. Its process tree (the CLI's circus arbiter,
the ``Classifier`` and ``Model`` workers) is measured like :class:`tests.utils.serve_app.
ServeProcess`'s: CPU seconds and worker pids from the kernel.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from tests.utils.paths import REPO_ROOT
from tests.utils.postgres import free_port
from tests.utils.proc_stats import tree_cpu_seconds
from tests.utils.processes import stop_process, wait_http_ok

SERVICE_DIR = REPO_ROOT / "bench" / "bentoml"
DEFAULT_VENV = REPO_ROOT / ".venv-bentoml"
SETUP_SCRIPT = SERVICE_DIR / "setup.sh"


def bentoml_version(venv: Path = DEFAULT_VENV) -> str:
    """``bentoml.__version__`` in ``venv``."""
    python = venv / "bin" / "python"
    command = [str(python), "-c", "import bentoml; print(bentoml.__version__)"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


class BentoProcess:
    """``bentoml serve service:Classifier`` with ``env`` (``RAKUTEN_BENTO_*``) on 127.0.0.1."""

    def __init__(
        self, env: Mapping[str, str], *, log_path: Path, home: Path, venv: Path = DEFAULT_VENV
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # not the workspace's environment: BentoML runs on its own interpreter and packages
        skip = ("RAKUTEN_", "VIRTUAL_ENV", "PYTHONPATH", "UV_")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        full_env |= {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **env}
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(venv / "bin" / "bentoml"), "serve", "service:Classifier"]
            + ["--host", "127.0.0.1", "--port", str(self.port)],
            cwd=SERVICE_DIR,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 180.0) -> float:
        """Seconds from process start to the first 200 from ``/readyz`` (the model loaded)."""
        ready = f"{self.base_url}/readyz"
        wait_http_ok(self.process, ready, log_path=self.log_path, timeout_s=timeout_s)
        return time.monotonic() - self.started

    def worker_pids(self) -> list[int]:
        """Every process under the CLI: the ``Classifier`` and ``Model`` workers."""
        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def service_names(self) -> dict[int, str]:
        """pid -> the service a worker runs (``Classifier`` or ``Model``; the CLI: ``arbiter``)."""
        names = {}
        for pid in self.worker_pids():
            try:
                args = psutil.Process(pid).cmdline()
            except psutil.NoSuchProcess:
                continue
            flag = "--service-name"
            names[pid] = args[args.index(flag) + 1] if flag in args else "arbiter"
        return names

    def cpu_seconds(self) -> float:
        """CPU used so far by the CLI (circus arbiter) and all its workers."""
        return tree_cpu_seconds(self.process.pid)

    def close(self) -> None:
        """SIGTERM to the arbiter (it stops its workers), then whatever is left is killed."""
        children = self.worker_pids()
        stop_process(self.process)
        for pid in children:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                continue
        self._log.close()
