"""``scripts/publish-images.sh``: built once for staging, promoted to production by digest.

The script runs on a copy of the tree: in ``--dry-run`` mode (the commands it would run), and for
real against stand-in ``docker`` and ``skopeo`` executables on ``PATH`` that log their arguments
and answer like a registry (a push's RepoDigest, a tag's manifest bytes), so the digest file,
the copy and the check of the production tag are exercised without an engine or a registry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT

pytestmark = pytest.mark.integration

PUBLISH_SCRIPT = REPO_ROOT / "scripts" / "publish-images.sh"
IMAGES = {
    "data": "Dockerfile",
    "train": "Dockerfile",
    "predict": "Dockerfile",
    "serve": "Dockerfile",
    "monitor": "Dockerfile",
    "mlflow": "docker/mlflow/Dockerfile",
    "proxy": "docker/proxy/Dockerfile",
    "pushgateway": "docker/pushgateway/Dockerfile",
}
STAGING = "ghcr.io/acme-staging"
PRODUCTION = "ghcr.io/acme"
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
REPO_DIGESTS = "{{range .RepoDigests}}{{println .}}{{end}}"
PROMOTE_ENV = {"SOURCE_REGISTRY": STAGING, "REGISTRY": PRODUCTION, "TAG": "v1.2.0"}

# Stand-ins: each logs its arguments, one line per call; `docker image inspect` answers the
# RepoDigest a push would have left (digest = sha256 of the image name), `skopeo inspect --raw`
# the manifest bytes in $FAKE_MANIFEST.
FAKE_DOCKER = """#!/usr/bin/env bash
echo "docker $*" >> "$FAKE_LOG"
if [[ "$1 $2" == "image inspect" ]]; then
  ref=${@: -1}; repo=${ref%:*}; name=${repo##*/}
  echo "other.example/mirror/$name@sha256:$(printf 0%.0s {1..64})"
  echo "$repo@sha256:$(printf %s "$name" | sha256sum | cut -d' ' -f1)"
fi
"""
FAKE_SKOPEO = """#!/usr/bin/env bash
echo "skopeo $*" >> "$FAKE_LOG"
if [[ "$1" == inspect ]]; then cat "$FAKE_MANIFEST"; fi
"""


def _tree_with_dockerfiles(root: Path, skip: str | None = None) -> Path:
    (root / "scripts").mkdir()
    shutil.copy2(PUBLISH_SCRIPT, root / "scripts" / PUBLISH_SCRIPT.name)
    for path in IMAGES.values():
        if path != skip:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text("FROM python:3.11-slim\n")
    return root / "scripts" / PUBLISH_SCRIPT.name


def _publish(
    script: Path, env: dict[str, str], *args: str, path: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        env={"PATH": path + os.environ["PATH"], **env},
        cwd=script.parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _digests_file(path: Path, lines: dict[str, str] | None = None) -> Path:
    lines = lines or {name: f"{STAGING}/rakuten-{name}@{MANIFEST_DIGEST}" for name in IMAGES}
    path.write_text("".join(f"{name}={ref}\n" for name, ref in lines.items()))
    return path


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    """``PATH`` prefix and environment for the stand-in docker and skopeo."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("skopeo", FAKE_SKOPEO)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "manifest.json").write_bytes(MANIFEST)
    return {
        "path": f"{bin_dir}{os.pathsep}",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_MANIFEST": str(tmp_path / "manifest.json"),
    }


def _calls(fakes: dict[str, str]) -> list[str]:
    log = Path(fakes["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_build_dry_run_builds_pushes_and_reads_back_each_image_once(tmp_path: Path) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    env = {"REGISTRY": f"{STAGING}/", "TAG": "v1.2.0"}
    result = _publish(script, env, "build", "--digests", "out.txt", "--dry-run")
    assert result.returncode == 0, result.stderr
    expected = []
    for name, dockerfile in IMAGES.items():
        ref = f"{STAGING}/rakuten-{name}:v1.2.0"
        stage = f"--build-arg PACKAGE={name} --target {name} " if dockerfile == "Dockerfile" else ""
        expected += [
            f"+ docker build --file {dockerfile} {stage}--tag {ref} .",
            f"+ docker push {ref}",
            f"+ docker image inspect --format {REPO_DIGESTS} {ref}",
        ]
    assert result.stdout.splitlines() == expected
    assert not (tmp_path / "out.txt").exists()  # a dry run writes nothing


def test_build_writes_the_digest_the_registry_gave_each_push(
    tmp_path: Path, fakes: dict[str, str]
) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    env = {"REGISTRY": STAGING, "TAG": "v1.2.0", **fakes}
    result = _publish(script, env, "build", "--digests", "digests.txt", path=fakes["path"])
    assert result.returncode == 0, result.stderr
    expected = [
        f"{name}={STAGING}/rakuten-{name}@sha256:{hashlib.sha256(f'rakuten-{name}'.encode()).hexdigest()}"
        for name in IMAGES
    ]
    assert (tmp_path / "digests.txt").read_text().splitlines() == expected
    assert sum(call.startswith("docker build ") for call in _calls(fakes)) == len(IMAGES)


def test_promote_dry_run_copies_by_digest_and_reads_each_tag_back(tmp_path: Path) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    digests = _digests_file(tmp_path / "staging.txt")
    env = {**PROMOTE_ENV, "SOURCE_AUTHFILE": "/a/src.json", "TARGET_AUTHFILE": "/a/dst.json"}
    result = _publish(script, env, "promote", "--digests", str(digests), "--dry-run")
    assert result.returncode == 0, result.stderr
    expected = []
    for name in IMAGES:
        source = f"docker://{STAGING}/rakuten-{name}@{MANIFEST_DIGEST}"
        target = f"docker://{PRODUCTION}/rakuten-{name}:v1.2.0"
        expected += [
            "+ skopeo copy --all --preserve-digests --src-authfile /a/src.json"
            f" --dest-authfile /a/dst.json {source} {target}",
            f"+ skopeo inspect --raw --authfile /a/dst.json {target}",
        ]
    assert result.stdout.splitlines() == expected
    assert "docker" not in result.stdout.replace("docker://", "")


def test_promote_copies_checks_and_writes_the_production_references(
    tmp_path: Path, fakes: dict[str, str]
) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    digests = _digests_file(tmp_path / "staging.txt")
    env = {**PROMOTE_ENV, **fakes}
    args = ("promote", "--digests", "staging.txt", "--out", "production.txt")
    result = _publish(script, env, *args, path=fakes["path"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "production.txt").read_text().splitlines() == [
        f"{name}={PRODUCTION}/rakuten-{name}@{MANIFEST_DIGEST}" for name in IMAGES
    ]
    calls = _calls(fakes)
    assert not [c for c in calls if c.startswith("docker ")]  # nothing built, pulled or pushed
    assert len([c for c in calls if c.startswith("skopeo copy ")]) == len(IMAGES)
    assert digests.exists()


def test_promote_fails_when_a_production_tag_resolves_to_another_digest(
    tmp_path: Path, fakes: dict[str, str]
) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    _digests_file(tmp_path / "staging.txt")
    Path(fakes["FAKE_MANIFEST"]).write_bytes(MANIFEST + b" ")  # the registry serves other bytes
    args = ("promote", "--digests", "staging.txt", "--out", "production.txt")
    result = _publish(script, {**PROMOTE_ENV, **fakes}, *args, path=fakes["path"])
    assert result.returncode == 1
    assert "rakuten-data:v1.2.0 resolves to sha256:" in result.stderr
    assert f"not the promoted {MANIFEST_DIGEST}" in result.stderr
    assert not (tmp_path / "production.txt").exists()


GOOD = f"{STAGING}/rakuten-serve@{MANIFEST_DIGEST}"


@pytest.mark.parametrize(
    ("serve_line", "message"),
    [
        (f"{STAGING}/rakuten-serve@sha256:{'a' * 63}", "serve has no sha256 digest"),
        (f"{STAGING}/rakuten-serve@sha256:{'A' * 64}", "serve has no sha256 digest"),
        (f"{STAGING}/rakuten-serve@sha512:{'a' * 128}", "serve has no sha256 digest"),
        (f"{STAGING}/rakuten-serve:v1.2.0", "is not under SOURCE_REGISTRY"),
        (f"{GOOD}\r", "serve has no sha256 digest"),
        (f"{GOOD}; docker run evil", "serve has no sha256 digest"),
        (f"evil.example/acme/rakuten-serve@{MANIFEST_DIGEST}", "is not under SOURCE_REGISTRY"),
        (f"{STAGING}/rakuten-proxy@{MANIFEST_DIGEST}", "is not under SOURCE_REGISTRY"),
    ],
)
def test_promote_refuses_a_malformed_digest_before_running_anything(
    tmp_path: Path, fakes: dict[str, str], serve_line: str, message: str
) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    lines = {name: f"{STAGING}/rakuten-{name}@{MANIFEST_DIGEST}" for name in IMAGES}
    _digests_file(tmp_path / "staging.txt", {**lines, "serve": serve_line})
    result = _publish(
        script, {**PROMOTE_ENV, **fakes}, "promote", "--digests", "staging.txt", path=fakes["path"]
    )
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""
    assert _calls(fakes) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no digest for data"),
        (
            "\n".join(
                f"{n}={STAGING}/rakuten-{n}@{MANIFEST_DIGEST}" for n in IMAGES if n != "mlflow"
            ),
            "no digest for mlflow",
        ),
        (f"data={STAGING}/rakuten-data@{MANIFEST_DIGEST}\n" * 2, "data is listed twice"),
        (f"airflow={STAGING}/rakuten-airflow@{MANIFEST_DIGEST}\n", "expected <image>="),
        ("# a comment\n", "expected <image>="),
    ],
)
def test_promote_refuses_an_incomplete_or_unknown_list(
    tmp_path: Path, fakes: dict[str, str], text: str, message: str
) -> None:
    script = _tree_with_dockerfiles(tmp_path)
    (tmp_path / "staging.txt").write_text(text)
    result = _publish(
        script, {**PROMOTE_ENV, **fakes}, "promote", "--digests", "staging.txt", path=fakes["path"]
    )
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""
    assert _calls(fakes) == []


@pytest.mark.parametrize(
    ("env", "args", "skip", "message"),
    [
        ({"TAG": "v1"}, ("build",), None, "set REGISTRY"),
        ({"REGISTRY": "r.example/x"}, ("build",), None, "set REGISTRY"),
        (
            {"REGISTRY": "r.example/x", "TAG": "v1;rm -rf /"},
            ("build",),
            None,
            "not a valid image tag",
        ),
        ({"REGISTRY": "r.example/x y", "TAG": "v1"}, ("build",), None, "not a registry path"),
        (
            {"REGISTRY": "r.example/x", "TAG": "v1"},
            ("build",),
            "docker/mlflow/Dockerfile",
            "is missing",
        ),
        ({"REGISTRY": "r.example/x", "TAG": "v1"}, (), None, "usage:"),
        ({"REGISTRY": "r.example/x", "TAG": "v1"}, ("build", "--out", "x"), None, "usage:"),
        ({"REGISTRY": "r.example/x", "TAG": "v1"}, ("promote",), None, "set SOURCE_REGISTRY"),
        ({**PROMOTE_ENV, "SOURCE_REGISTRY": f"{PRODUCTION}/"}, ("promote",), None, "are the same"),
        (PROMOTE_ENV, ("promote", "--digests", "absent.txt"), None, "absent.txt is missing"),
    ],
)
def test_publish_refuses_before_running_anything(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], skip: str | None, message: str
) -> None:
    script = _tree_with_dockerfiles(tmp_path, skip=skip)
    if args and "--digests" not in args and "--out" not in args:
        args = (*args, "--digests", str(_digests_file(tmp_path / "staging.txt")))
    result = _publish(script, env, *args, "--dry-run")
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_every_dockerfile_of_the_repository_is_published() -> None:
    found = {
        str(p.relative_to(REPO_ROOT))
        for pattern in ("Dockerfile", "services/*/Dockerfile", "docker/*/Dockerfile")
        for p in REPO_ROOT.glob(pattern)
    }
    assert found <= set(IMAGES.values())
    listed = set(re.findall(r'"\w+=((?:[\w/]+/)?Dockerfile)"', PUBLISH_SCRIPT.read_text()))
    assert listed == set(IMAGES.values())
