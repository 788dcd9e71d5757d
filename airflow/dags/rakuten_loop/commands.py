"""The project's CLIs, run as subprocesses of the project's own environment.

Airflow's environment and the services' (``uv.lock``) cannot be one: Airflow pins Flask,
SQLAlchemy 1.4 and friends. So every step that needs project code is a command
(``rakuten-data``, ``dvc``, ``rakuten-train``) found in ``RAKUTEN_LOOP_BIN`` and run in the
project's checkout, its output streamed into the task's log line by line. A :class:`Step` is
what a task runs, whichever way it runs: here (:func:`run_step`) or as a pod
(:mod:`rakuten_loop.pods`, ``RAKUTEN_LOOP_EXECUTION=kubernetes``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rakuten_loop.config import LoopConfig

logger = logging.getLogger(__name__)
_USERINFO = re.compile(r"(://)[^/@\s]+@")

# What a step inherits from the Airflow worker's environment: the project's own settings, the
# tracking server, the database password file, locale, certificates and numeric-library knobs.
# Nothing else (Airflow's configuration, its database connection, its secret-key command, the
# loop's and the webhook's own settings): the steps decode images that users sent, so they get
# only what they need.
_PASSED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "PGPASSFILE",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }
)
_PASSED_PREFIXES = ("RAKUTEN_", "LC_", "OPENBLAS_", "OMP_", "TF_", "COVERAGE_")
_WITHHELD_PREFIXES = ("RAKUTEN_LOOP_", "RAKUTEN_AIRFLOW_", "RAKUTEN_ALERT_WEBHOOK_")


def step_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ``environ`` a step's subprocess gets."""
    return {
        name: value
        for name, value in environ.items()
        if (name in _PASSED or name.startswith(_PASSED_PREFIXES))
        and not name.startswith(_WITHHELD_PREFIXES)
    }


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL removed: what may reach a log."""
    return _USERINFO.sub(r"\1***@", text)


class CommandError(RuntimeError):
    """A command exited with a code its step does not accept."""

    def __init__(self, args: Sequence[str], code: int) -> None:
        super().__init__(f"`{redact(' '.join(args))}` exited with {code}")
        self.code = code


def run(
    config: LoopConfig,
    args: Sequence[str],
    *,
    ok_codes: tuple[int, ...] = (0,),
    extra_env: Mapping[str, str] | None = None,
) -> int:
    """Run ``args`` in the project's checkout; returns its exit code (one of ``ok_codes``)."""
    env = step_environment(os.environ)  # never PYTHONPATH: Airflow's paths stay out
    if config.bin_dir is not None:
        env["PATH"] = f"{config.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(config.bin_dir.parent)
    env.update(extra_env or {})
    logger.info("running `%s` in %s", redact(" ".join(args)), config.workdir)
    with subprocess.Popen(
        list(args),
        cwd=config.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            logger.info("%s", redact(line.rstrip()))
        code = process.wait()
    if code not in ok_codes:
        raise CommandError(args, code)
    return code


@dataclass(frozen=True)
class Step:
    """One command of a task: its arguments, the exit codes it accepts, what it adds to the
    environment, the folder it writes its documents in and the JSON document that is its
    result (the task's XCom), if any."""

    args: tuple[str, ...]
    ok_codes: tuple[int, ...] = (0,)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    run_dir: Path | None = None
    out: Path | None = None


@dataclass(frozen=True)
class StepSpec:
    """A task's step for its pod: how its command is built, what the task makes of the result
    document, and what the pod needs beyond the common ones (serve's image store, training's
    resources and nodes)."""

    build: Callable[[LoopConfig, dict[str, Any]], Step | None]
    done: Callable[[dict[str, Any], Any], Any] | None = None
    images: bool = False
    train: bool = False


def run_step(config: LoopConfig, step: Step) -> dict[str, Any] | None:
    """Run ``step`` here (the local execution); returns its result document, if it has one."""
    run(config, step.args, ok_codes=step.ok_codes, extra_env=step.extra_env)
    return read_json(step.out) if step.out is not None else None


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
