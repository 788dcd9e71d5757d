"""``airflow/bin/pipeline-workdir.sh``: the scheduler's working copy of the pipeline, for real.

The Airflow containers run on a read-only root file system; the image's checkout of the
pipeline is read-only and the DAG's ``dvc repro`` runs in a copy on a volume. At every scheduler
start the copy's code must become exactly the image's (files changed, added, removed), while
what the pipeline wrote there (dvc.lock, the DVC cache, models, reports, logs, data) stays.
Real ``git`` on throw-away folders.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "airflow" / "bin" / "pipeline-workdir.sh"
IGNORED = "/data/\n/models/\n/reports/\n/logs/\n"  # as airflow/Dockerfile writes it
# what `dvc repro` and the steps leave in the working copy (traced: docs/security.md)
WRITTEN = {
    "dvc.lock": "schema: '2.0'\n",
    ".dvc/.gitignore": "/tmp\n/cache\n",
    ".dvc/cache/files/md5/ab/cdef": "cached",
    ".dvc/tmp/rwlock": "{}",
    "models/current/bundle.json": "{}",
    "reports/loop/manual__1/gate.json": "{}",
    "logs/train.log": "trained\n",
    "data/raw/X_train.csv": "rows",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _commit(source: Path, files: dict[str, str | None]) -> str:
    """A new commit of the image's checkout: ``None`` removes a file."""
    source.mkdir(parents=True, exist_ok=True)
    if not (source / ".git").exists():
        _git(source, "init", "-q")
    for rel, text in {".gitignore": IGNORED, **files}.items():
        path = source / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    _git(source, "add", "-A")
    _git(source, "commit", "-qm", "pipeline")
    return _git(source, "rev-parse", "HEAD")


def _workdir(source: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(source), str(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts[:1]
    }


CODE = {
    "dvc.yaml": "stages: {}\n",
    "params.yaml": "train: {epochs: 1}\n",
    "scripts/data-stage.sh": "echo data\n",
    "services/train/src/rakuten_train/cli.py": "v1\n",
}


def test_the_first_start_checks_out_the_image_s_commit(tmp_path: Path) -> None:
    source, workdir = tmp_path / "pipeline", tmp_path / "project"
    head = _commit(source, CODE)
    (workdir / "data").mkdir(parents=True)  # the data volume's mount point, already there
    result = _workdir(source, workdir)
    assert result.returncode == 0, result.stderr
    assert _git(workdir, "rev-parse", "HEAD") == head
    assert _files(workdir) == {".gitignore": IGNORED, **CODE}
    assert head[:7] in result.stdout


def test_a_new_image_replaces_the_code_and_keeps_what_the_pipeline_wrote(tmp_path: Path) -> None:
    source, workdir = tmp_path / "pipeline", tmp_path / "project"
    _commit(source, CODE)
    assert _workdir(source, workdir).returncode == 0
    for rel, text in WRITTEN.items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(text)
    (workdir / "params.yaml").write_text("edited in the container\n")  # the image's code wins
    head = _commit(
        source,
        {
            "services/train/src/rakuten_train/cli.py": "v2\n",
            "scripts/data-stage.sh": None,
            "scripts/new-stage.sh": "echo new\n",
        },
    )
    result = _workdir(source, workdir)
    assert result.returncode == 0, result.stderr
    assert _git(workdir, "rev-parse", "HEAD") == head
    expected_code = {
        ".gitignore": IGNORED,
        "dvc.yaml": CODE["dvc.yaml"],
        "params.yaml": CODE["params.yaml"],
        "scripts/new-stage.sh": "echo new\n",
        "services/train/src/rakuten_train/cli.py": "v2\n",
    }
    assert _files(workdir) == {**expected_code, **WRITTEN}


@pytest.mark.parametrize("broken", ["no-git", "no-dvc-yaml", "missing"])
def test_a_source_that_is_not_the_pipeline_s_checkout_is_refused(
    tmp_path: Path, broken: str
) -> None:
    source, workdir = tmp_path / "pipeline", tmp_path / "project"
    if broken == "no-git":
        source.mkdir()
        (source / "dvc.yaml").write_text("stages: {}\n")
    elif broken == "no-dvc-yaml":
        _commit(source, {"params.yaml": "x: 1\n"})
    result = _workdir(source, workdir)
    assert result.returncode == 2
    assert "is not the pipeline's checkout" in result.stderr
    assert not workdir.exists()
