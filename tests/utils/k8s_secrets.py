"""The Kubernetes Secrets of ``deploy/helm/create-secrets.sh``, made with ``--print``."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rakuten_core.stack_secrets import STORE
from tests.utils.helm import NAMESPACE, RELEASE
from tests.utils.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "helm" / "create-secrets.sh"
CATALOGUE = REPO_ROOT / "deploy" / "helm" / "secrets.toml"
POSTGRES_HOST = "postgres.databases.svc"
REDIS_HOST = "redis-master.databases.svc"
# the one key made by the script that holds no secret
USER_NAME_KEY = (f"{RELEASE}-pushgateway", "username")


def kubectl() -> str:
    """kubectl (client only: ``--dry-run=client`` needs no cluster); missing is a failure."""
    for candidate in (os.environ.get("KUBECTL"), REPO_ROOT / ".tools" / "kubectl"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("kubectl is missing: put it on PATH, in .tools/ or in $KUBECTL")
    return found


def create_secrets(
    directory: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the script with ``--dir directory``; ``args`` replace the defaults below when given.

    ``env`` is added to the environment (``KUBECTL`` there replaces the real kubectl).
    """
    defaults = (
        *("--namespace", NAMESPACE),
        *("--postgres-host", POSTGRES_HOST),
        *("--redis-host", REDIS_HOST),
        "--print",
    )
    command = [str(SCRIPT), "--fullname", RELEASE, "--dir", str(directory), *(args or defaults)]
    return subprocess.run(  # noqa: S603 - the project's own script
        command,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env={**os.environ, "KUBECTL": kubectl(), **(env or {})},
    )


def printed_manifests(stdout: str) -> list[dict[str, Any]]:
    """The manifests of the ``--print`` output."""
    return [doc for doc in yaml.safe_load_all(stdout) if doc is not None]


def printed_secrets(stdout: str) -> dict[str, dict[str, str]]:
    """Secret name -> key -> decoded value, from the ``--print`` output."""
    return {
        m["metadata"]["name"]: {
            key: base64.b64decode(value).decode() for key, value in m.get("data", {}).items()
        }
        for m in printed_manifests(stdout)
    }


def generated_secret_keys(tmp_path: Path) -> dict[str, set[str]]:
    """Secret name -> its keys, as the script makes them for the tests' release and namespace.

    The chart's tests check that every Secret key a template mounts is one of these.
    """
    made = create_secrets(tmp_path / "k8s-secrets")
    return {name: set(data) for name, data in printed_secrets(made.stdout).items()}


def generated_secret_values(tmp_path: Path) -> set[str]:
    """Every secret the script makes: the master values and each key's content made from them.

    The Pushgateway's user name (the one key that is no secret) is left out. The chart's tests
    check that none of these appears in a rendered manifest.
    """
    directory = tmp_path / "k8s-secrets"
    made = printed_secrets(create_secrets(directory).stdout)
    values = {path.read_text() for path in (directory / STORE).iterdir()}
    for name, data in made.items():
        values |= {v for key, v in data.items() if (name, key) != USER_NAME_KEY}
    return values
