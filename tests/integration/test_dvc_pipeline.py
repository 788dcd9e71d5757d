"""`dvc repro` end to end in a temporary copy of the repository, on a tiny offline sample.

The copy holds the repository's files as git sees them (tracked + untracked-not-ignored, like a
fresh clone of the working tree), becomes its own git repo, and runs the real CLIs of the
workspace's ``.venv`` through PATH. Params are shrunk (a few hundred sample rows, one epoch) the
way a user would, by editing ``params.yaml``. Checks: every stage's outputs, the metrics file,
one prediction per test row, a second ``dvc repro`` that does nothing, a predict-only param change
that re-runs only ``predict``, ``dvc exp run -S train.epochs=...``, ``dvc push`` to the
default local remote, and a feedback slice exported into ``data/feedback`` that re-runs prepare
with its rows in train/val and the test split byte-identical, and marks train and evaluate out
of date (``dvc repro prepare``: the training they would re-run is the one the first
repro and ``exp run`` already proved, and it is a minute of the suite).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.utils.feedback_records import Labelled, add_labelled, create_schema, picture
from tests.utils.pipeline_repo import make_pipeline_repo, run_in, set_params

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRAIN_ROWS = 300
TEST_ROWS = 40
STAGES = ("data", "feedback", "prepare", "train", "evaluate", "predict")


def _run(repo: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return run_in(repo, *args, timeout=timeout)


def _ran(output: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in output}


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    repo = make_pipeline_repo(
        tmp_path_factory.mktemp("dvc-pipeline") / "repo",
        **{
            "data.source": "sample",
            "data.sample_train_rows": TRAIN_ROWS,
            "data.sample_test_rows": TEST_ROWS,
            "train.epochs": 1,
        },
    )
    yield repo


@pytest.fixture(scope="module")
def first_repro(pipeline_repo: Path) -> tuple[str, float]:
    started = time.perf_counter()
    result = _run(pipeline_repo, "dvc", "repro")
    return result.stdout + result.stderr, time.perf_counter() - started


def test_repro_runs_every_stage_and_writes_the_outputs(
    pipeline_repo: Path, first_repro: tuple[str, float]
) -> None:
    output, seconds = first_repro
    assert _ran(output) == set(STAGES), output
    repo = pipeline_repo
    for name in ("X_train_update.csv", "Y_train_CVw08PX.csv", "X_test_update.csv"):
        assert (repo / "data" / "raw" / name).is_file()
    for split in ("train", "val", "test"):
        assert (repo / "data" / "processed" / f"{split}.parquet").is_file()
    model_file = repo / "models" / "current" / "model.keras"
    assert model_file.is_file()
    # one copy on disk: without reflinks (ext4, overlayfs) the workspace's model file is a
    # hardlink to its cache entry (.dvc/config cache.type), not a second copy
    cached = [p for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file()]
    assert [p for p in cached if p.stat().st_ino == model_file.stat().st_ino], cached
    assert model_file.stat().st_nlink == 2
    bundle = json.loads((repo / "models" / "current" / "bundle.json").read_text(encoding="utf-8"))

    metrics = json.loads((repo / "reports" / "metrics.json").read_text(encoding="utf-8"))
    for key in ("weighted_f1", "macro_f1", "accuracy", "n"):
        assert key in metrics, metrics
    assert 0.0 <= metrics["weighted_f1"] <= 1.0
    shown = _run(repo, "dvc", "metrics", "show").stdout
    assert "reports/metrics.json" in shown and "weighted_f1" in shown

    predictions = pd.read_csv(repo / "data" / "predictions" / "test.csv", index_col=0)
    tests = pd.read_csv(repo / "data" / "raw" / "X_test_update.csv", index_col=0)
    assert len(predictions) == len(tests) == TEST_ROWS
    assert predictions.index.tolist() == tests.index.tolist()
    codes = {c["code"] for c in bundle["categories"]}
    assert set(predictions["prdtypecode"]) <= codes
    summary = json.loads(
        (repo / "data" / "predictions" / "test.summary.json").read_text(encoding="utf-8")
    )
    assert summary["rows"] == TEST_ROWS
    assert summary["model"]["version"] == bundle["model_version"]
    print(f"first dvc repro: {seconds:.0f} s")  # noqa: T201  (shown with -s: the pipeline's cost)


def test_second_repro_does_nothing(pipeline_repo: Path, first_repro: tuple[str, float]) -> None:
    result = _run(pipeline_repo, "dvc", "repro")
    output = result.stdout + result.stderr
    assert not _ran(output), output
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in output
    status = _run(pipeline_repo, "dvc", "status").stdout
    assert "Data and pipelines are up to date" in status, status


def test_a_predict_param_reruns_only_predict(
    pipeline_repo: Path, first_repro: tuple[str, float]
) -> None:
    set_params(pipeline_repo, **{"predict.batch_size": 16})
    status = _run(pipeline_repo, "dvc", "status", "--json").stdout
    assert set(json.loads(status)) == {"predict"}, status
    result = _run(pipeline_repo, "dvc", "repro")
    assert _ran(result.stdout + result.stderr) == {"predict"}, result.stdout
    rows = pd.read_csv(pipeline_repo / "data" / "predictions" / "test.csv", index_col=0)
    assert len(rows) == TEST_ROWS
    assert "Data and pipelines are up to date" in _run(pipeline_repo, "dvc", "status").stdout


def test_exp_run_with_a_train_param(pipeline_repo: Path, first_repro: tuple[str, float]) -> None:
    _run(pipeline_repo, "git", "add", "-A")
    _run(pipeline_repo, "git", "commit", "-q", "-m", "baseline")
    result = _run(pipeline_repo, "dvc", "exp", "run", "-S", "train.epochs=2")
    # exactly the stages downstream of the changed param: data and prepare are not re-run
    assert _ran(result.stdout + result.stderr) == {"train", "evaluate", "predict"}, result.stdout
    shown = json.loads(_run(pipeline_repo, "dvc", "exp", "show", "--json").stdout)
    assert "train.epochs" in json.dumps(shown) or '"epochs": 2' in json.dumps(shown)


def test_push_to_the_default_local_remote(
    pipeline_repo: Path, first_repro: tuple[str, float]
) -> None:
    _run(pipeline_repo, "dvc", "push")
    storage = pipeline_repo / ".dvc-storage"
    assert storage.is_dir() and any(p.is_file() for p in storage.rglob("*"))
    status = _run(pipeline_repo, "dvc", "status", "--cloud").stdout
    assert "up to date" in status.lower() or "Cache and remote" in status, status


def test_an_exported_feedback_slice_reruns_prepare_and_outdates_what_follows(
    pipeline_repo: Path, first_repro: tuple[str, float], tmp_path: Path
) -> None:
    from rakuten_data.feedback_export import export_feedback, open_database  # noqa: PLC0415

    repo = pipeline_repo
    test_before = (repo / "data" / "processed" / "test.parquet").read_bytes()
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    create_schema(url)
    codes = (10, 2280, 50, 1280)
    rows = [
        Labelled(
            f"f{i}",
            codes[i % 4],
            minutes=i,
            productid=10**11 + i,
            imageid=10**11 + i,
            designation=f"Retour client {i}",
            image=picture(i),
        )
        for i in range(12)
    ]
    add_labelled(url, rows, tmp_path / "store")
    engine = open_database(url)
    try:
        export_feedback(
            engine,
            images_dir=tmp_path / "store",
            out=repo / "data" / "feedback",
            holdout_share=0.25,
        )
    finally:
        engine.dispose()
    result = _run(repo, "dvc", "repro", "prepare")
    output = result.stdout + result.stderr
    assert _ran(output) == {"feedback", "prepare"}, output
    assert (repo / "data" / "processed" / "test.parquet").read_bytes() == test_before
    trained = pd.concat(
        pd.read_parquet(repo / "data" / "processed" / f"{n}.parquet") for n in ("train", "val")
    )
    assert (trained["productid"] >= 10**11).sum() == 9  # 12 rows, the 3 most recent held out
    # what reads the new splits is out of date, nothing upstream (predict reads the model, which
    # changes once train runs again)
    status = json.loads(_run(repo, "dvc", "status", "--json").stdout)
    assert set(status) == {"train", "evaluate"}, status
