"""The project's CLIs, run as subprocesses of the project's own environment.

Airflow's environment and the services' (``uv.lock``) cannot be one: Airflow pins Flask,
SQLAlchemy 1.4 and friends. So every step that needs project code is a command
(``rakuten-data``, ``dvc``, ``rakuten-train``) found in ``RAKUTEN_LOOP_BIN`` and run in the
project's checkout, its output streamed into the task's log line by line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rakuten_loop.config import LoopConfig

logger = logging.getLogger(__name__)
_USERINFO = re.compile(r"(://)[^/@\s]+@")


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
    env = dict(os.environ)
    if config.bin_dir is not None:
        env["PATH"] = f"{config.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(config.bin_dir.parent)
    env.pop("PYTHONPATH", None)  # Airflow's own paths must not leak into the project's Python
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


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
