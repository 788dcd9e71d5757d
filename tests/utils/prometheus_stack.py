"""Real Prometheus, Pushgateway and Alertmanager (Debian packages) on free loopback ports.

:func:`config_for_test` turns the project's own ``monitoring/prometheus/prometheus.yml``
into one for a test: same jobs and rules, targets replaced by the test's addresses, and short
scrape and evaluation intervals so a test sees data within seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.utils.monitoring import PROMETHEUS_YML, RULES_DIR, load_yaml, scrape_jobs
from tests.utils.postgres import free_port
from tests.utils.processes import stop_process, wait_http_ok


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(f"{names[0]} is missing: run `make system-deps` (scripts/system-deps.sh)")


class Daemon:
    """A server process on a free loopback port, its output in ``log_path``, stopped by close."""

    def __init__(self, args: Sequence[str], *, port: int, log_path: Path, ready_path: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(list(args), stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(ready_path)

    def _wait(self, path: str, timeout_s: float = 60.0) -> None:
        wait_http_ok(self.process, self.url + path, log_path=self.log_path, timeout_s=timeout_s)

    def close(self) -> None:
        stop_process(self.process)
        self._log.close()


def start_pushgateway(workdir: Path) -> Daemon:
    port = free_port()
    args = [
        _binary("prometheus-pushgateway", "pushgateway"),
        f"--web.listen-address=127.0.0.1:{port}",
        # its own file: Debian's build persists to one shared file by default, so a gateway
        # would start with every group an earlier test (or run) pushed
        f"--persistence.file={workdir / 'pushgateway.data'}",
    ]
    return Daemon(args, port=port, log_path=workdir / "pushgateway.log", ready_path="/-/ready")


def start_alertmanager(config: Path, workdir: Path) -> Daemon:
    port = free_port()
    (workdir / "alertmanager-data").mkdir(exist_ok=True)
    args = [
        _binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Daemon(args, port=port, log_path=workdir / "alertmanager.log", ready_path="/-/ready")


def start_prometheus(config: Path, workdir: Path, port: int) -> Daemon:
    (workdir / "prometheus-data").mkdir(exist_ok=True)
    args = [
        _binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Daemon(args, port=port, log_path=workdir / "prometheus.log", ready_path="/-/ready")


def config_for_test(
    targets: Mapping[str, Sequence[str]], *, alertmanager: str, interval: str = "1s"
) -> dict[str, Any]:
    """The project's config with every job's targets replaced by ``targets[job]``.

    Every job of the project's file must be given (an empty list for a process the test does
    not run), so a job added there without a target here fails loudly.
    """
    config: dict[str, Any] = load_yaml(PROMETHEUS_YML)
    jobs = scrape_jobs(config)
    assert set(targets) == set(jobs), f"targets for {sorted(jobs)}, got {sorted(targets)}"
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    for name, job in jobs.items():
        job.pop("dns_sd_configs", None)
        job.pop("basic_auth", None)  # the test's own processes run without users
        job["static_configs"] = [{"targets": list(targets[name])}]
    return config


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def push(pushgateway: str, job: str, exposition: str, *, method: str = "PUT") -> None:
    """One push of a batch job's figures (text format) under the grouping key ``job``: a PUT
    replaces the group (a success), a POST adds to it (a failure's time)."""
    response = httpx.request(
        method, f"{pushgateway}/metrics/job/{job}", content=exposition.encode(), timeout=10
    )
    assert response.status_code == 200, response.text


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; raises when Prometheus refuses the expression."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
