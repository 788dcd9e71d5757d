"""Helpers for the tests of the compose stack: the CLI, the engine, the base-image stand-ins.

The Docker engine and ``docker-compose`` come from ``../shared/tools/docker-up``, the base images
from ``../shared/tools/offline-images`` (no registry is reachable on these machines). Both are
resolved from the repository root's parent, like CI's checkout layout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.utils.paths import REPO_ROOT

SHARED_TOOLS = REPO_ROOT.parent / "shared" / "tools"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILES = (
    REPO_ROOT / "Dockerfile",
    REPO_ROOT / "docker" / "mlflow" / "Dockerfile",
    REPO_ROOT / "docker" / "proxy" / "Dockerfile",
    REPO_ROOT / "airflow" / "Dockerfile",
)
_ARG_IMAGE = re.compile(r"^ARG \w+_IMAGE=(\S+)$", re.MULTILINE)
_COMPOSE_IMAGE = re.compile(r"^\s+image:\s*([^\s$]+)\s*$", re.MULTILINE)


class ToolError(RuntimeError):
    """A shared tool or the Docker CLI is missing or failed."""


def run(
    args: Sequence[str],
    *,
    timeout: float,
    input_text: str | None = None,
    check: bool = True,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command, text in and out; raise :class:`ToolError` with its output when it fails."""
    result = subprocess.run(  # noqa: S603 - fixed argument lists built by the tests
        list(args),
        cwd=cwd,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise ToolError(
            f"{' '.join(args[:4])} ... exited {result.returncode}\n"
            f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        )
    return result


def ensure_engine() -> None:
    """Start the Docker engine (installing docker + docker-compose if needed), else raise."""
    tool = SHARED_TOOLS / "docker-up"
    if not tool.is_file():
        raise ToolError(f"{tool} is missing: no way to start a Docker engine")
    run(["bash", str(tool)], timeout=600)
    if shutil.which("docker-compose") is None:
        raise ToolError("docker-up ran but docker-compose is not on PATH")


def ensure_compose_cli() -> str:
    """Path of ``docker-compose``, installed through docker-up when missing."""
    found = shutil.which("docker-compose")
    if found is None:
        ensure_engine()
        found = shutil.which("docker-compose")
    if found is None:
        raise ToolError("docker-compose is not available")
    return found


def base_images() -> list[str]:
    """Every third-party image the stack names: Dockerfile bases and compose ``image:`` lines."""
    tags = {m for path in DOCKERFILES for m in _ARG_IMAGE.findall(path.read_text())}
    tags |= set(_COMPOSE_IMAGE.findall(COMPOSE_FILE.read_text()))
    return sorted(tags)


def ensure_base_images(tags: Sequence[str]) -> None:
    """Build offline stand-ins of ``tags`` not already in the engine (Grafana has none)."""
    missing = [
        tag
        for tag in tags
        if run(["docker", "image", "inspect", tag], timeout=60, check=False).returncode != 0
    ]
    if missing:
        run(["bash", str(SHARED_TOOLS / "offline-images"), *missing], timeout=1800)
