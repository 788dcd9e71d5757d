"""Pieces of the closed-loop test (tests/integration/test_closed_loop.py), all real processes.

- :func:`fast_rules`: a copy of the project's alert rules where only the drift alert's ``for:``
  is shortened, so a test sees it fire within seconds (thresholds and expressions unchanged);
- :func:`alertmanager_config`: the project's Alertmanager config, its webhook pointed at the
  test's ``rakuten-monitor alert-webhook``, e-mail removed and group waits shortened;
- :func:`start_webhook` / :func:`start_airflow`: the real CLIs as subprocesses;
- :func:`shifted_traffic`: products of another seed of the offline sample, sent without their
  description (the drift), with their images (kept by serve's image store) and their true code;
- :class:`RequestLoop`: a bounded ``/predict`` loop in a thread, counting every answer that is
  not a 200 and the model versions that answered.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

from rakuten_core import dataset
from rakuten_core.categories import CODES
from rakuten_data.sample import MIN_ROWS_PER_CLASS, SampleSpec, write_sample
from tests.utils.airflow_env import AIRFLOW_VENV, PROJECT_BIN, airflow_bin, airflow_env
from tests.utils.monitoring import ALERTMANAGER_YML, RULES_DIR, load_yaml
from tests.utils.postgres import free_port
from tests.utils.processes import stop_process, wait_http_ok

DRIFT_ALERT = "RakutenDriftAboveThreshold"


def fast_rules(out_dir: Path, *, alert: str = DRIFT_ALERT, for_: str = "2s") -> Path:
    """The project's rule files copied to ``out_dir`` with ``alert``'s ``for:`` set to ``for_``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = 0
    for path in sorted(RULES_DIR.glob("*.yml")):
        rules = load_yaml(path)
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    rule["for"] = for_
                    changed += 1
        (out_dir / path.name).write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    assert changed == 1, f"{alert} defined {changed} times in {RULES_DIR}"
    return out_dir


def alertmanager_config(webhook_url: str, token_file: Path) -> dict[str, Any]:
    """The project's Alertmanager config, the retraining webhook at ``webhook_url``, no e-mail
    and no notification log (the people's receivers send nothing), every route's waits 1 s."""
    config: dict[str, Any] = load_yaml(ALERTMANAGER_YML)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/alertmanager"
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        receiver.pop("email_configs", None)
        receiver.pop("slack_configs", None)
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    config["global"].pop("smtp_auth_password_file", None)
    return config


@dataclass
class Service:
    """A started subprocess with its URL and log; :meth:`close` stops it (bounded in time)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False)

    def close(self) -> None:
        stop_process(self.process)
        self._log.close()


def _start(
    args: list[str], env: dict[str, str], log_path: Path, url: str, ready: str, timeout_s: float
) -> Service:
    log = log_path.open("wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    service = Service(url, process, log_path, log)
    try:
        wait_http_ok(process, url + ready, log_path=log_path, timeout_s=timeout_s)
    except BaseException:
        service.close()
        raise
    return service


def start_webhook(project_bin: Path, env: dict[str, str], workdir: Path) -> Service:
    """``rakuten-monitor alert-webhook`` on a free loopback port (settings from ``env``)."""
    port = free_port()
    args = [str(project_bin / "rakuten-monitor"), "alert-webhook",
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    return _start(args, env, workdir / "alert-webhook.log", url, "/health", 240)


def start_airflow(home: Path, extra: dict[str, str]) -> tuple[Service, Service]:
    """``airflow webserver`` then ``airflow scheduler`` sharing ``home``'s metadata DB.

    The scheduler's executor starts each task as ``airflow tasks run``, found on ``PATH``: the
    Airflow venv goes first, the project's venv (dvc, the rakuten CLIs) after it.
    """
    env = airflow_env(home, extra)
    env["PATH"] = f"{AIRFLOW_VENV / 'bin'}:{PROJECT_BIN}:{env['PATH']}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = _start(
        [str(airflow_bin()), "webserver", "--port", str(port), "--hostname", "127.0.0.1"],
        env, home / "webserver.log", url, "/health", 900,
    )  # fmt: skip
    log = (home / "scheduler.log").open("wb")
    scheduler = subprocess.Popen(
        [str(airflow_bin()), "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return web, Service(url, scheduler, home / "scheduler.log", log)


@dataclass(frozen=True)
class Product:
    designation: str
    image: bytes
    code: int


def shifted_traffic(workdir: Path, rows: int, *, seed: int) -> list[Product]:
    """``rows`` products of the offline sample drawn with ``seed``, without their description.

    Another seed than the pipeline's, so none of these products is already in data/raw. The
    sample needs 6 rows per class: a larger one is written and ``rows`` of it drawn at random.
    """
    raw = workdir / "traffic-raw"
    size = max(rows, MIN_ROWS_PER_CLASS * len(CODES))
    write_sample(raw, SampleSpec(train_rows=size, test_rows=0, seed=seed), label_table=None)
    texts = pd.read_csv(raw / dataset.X_TRAIN_FILE, index_col=0).sample(n=rows, random_state=seed)
    codes = pd.read_csv(raw / dataset.Y_TRAIN_FILE, index_col=0)[dataset.LABEL_COLUMN]
    products = []
    for index, row in texts.iterrows():
        image = dataset.image_path(
            raw, dataset.TRAIN_IMAGES_DIR, int(row["imageid"]), int(row["productid"])
        )
        products.append(Product(str(row["designation"]), image.read_bytes(), int(codes[index])))
    return products


@dataclass
class RequestLoop:
    """``POST /predict`` every ``pause_s`` in a thread until stopped or ``max_requests``."""

    base_url: str
    token: str
    pause_s: float = 0.2
    max_requests: int = 20_000
    statuses: Counter[int] = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="request-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=120) as client:
            for i in range(self.max_requests):
                if self._stop.is_set():
                    return
                try:
                    answer = client.post("/predict", data={"designation": f"Lampe de chevet {i}"})
                except httpx.HTTPError as exc:  # a refused or cut connection is a failure too
                    self.errors.append(repr(exc))
                else:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        version = str(answer.json()["model_version"])
                        if not self.versions or self.versions[-1] != version:
                            self.versions.append(version)
                    else:
                        self.errors.append(f"{answer.status_code}: {answer.text[:300]}")
                time.sleep(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)
            assert not self._thread.is_alive(), "the request loop did not stop"

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + sum(
            1 for e in self.errors if not e[:3].isdigit()
        )
