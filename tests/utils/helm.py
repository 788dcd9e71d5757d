"""The Helm chart rendered by the real Helm binary (``make helm`` installs it into .tools/)."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.utils.paths import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "rakuten"
HELM = REPO_ROOT / ".tools" / "helm"
# The values files the chart ships, each rendered by the tests (default values: None)
VALUES_FILES: dict[str, Path | None] = {
    "default": None,
    "dev": CHART / "values-dev.yaml",
    "production": CHART / "values-production.yaml",
    "gpu": CHART / "values-gpu.yaml",
}
RELEASE = "rakuten"
NAMESPACE = "rakuten-test"
KUBE_VERSION = "1.37.0"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned Helm; a missing binary is a failure (CI installs it with `make helm`)."""
    if not HELM.exists():
        raise AssertionError(f"{HELM} is missing: run `make helm`")
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=check, timeout=120
    )


@dataclass(frozen=True)
class Rendered:
    """One `helm template` run: its manifests, and the text they came from."""

    name: str
    text: str
    manifests: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]


def template_args(values: str, *extra: str) -> list[str]:
    args = [
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    path = VALUES_FILES[values]
    if path is not None:
        args += ["--values", str(path)]
    return [*args, *extra]


@functools.cache
def render(values: str, *extra: str) -> Rendered:
    """`helm template` of the chart with one of VALUES_FILES (cached: the chart is read-only)."""
    text = helm(*template_args(values, *extra)).stdout
    manifests = tuple(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(name=values, text=text, manifests=manifests)
