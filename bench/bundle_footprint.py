"""Bundle footprint: size and load time of ``model.keras``, and bytes on disk per training run.

Two commands, both printing figures and asserting nothing:

- ``bundle``: for a trained bundle, side by side in one run, the file as :func:`save_bundle`
  writes it (inference only) and the same model re-saved with its Adam state (what a plain
  ``model.save`` of the training model writes: one ``m`` and one ``v`` slot per weight). For each:
  bytes, ``load_keras_bundle`` time in a fresh process (median of ``--loads``, alternated), and the
  largest difference between their probabilities on real products (0 means identical).
- ``pipeline``: the real DVC pipeline in a throw-away copy of the repository (offline sample,
  production model, MLflow in the copy's SQLite store), run once, then a second training run
  (``train.seed`` changed); prints the bytes on disk of ``models/current``, the DVC cache and
  MLflow's artifacts, the copies of ``model.keras`` (distinct on disk: hardlinks count once) and
  the bytes the second training run added.

    uv run --frozen python bench/bundle_footprint.py bundle --model models/current
    uv run --frozen python bench/bundle_footprint.py pipeline [--source DIR] [--epochs 2]
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils: the pipeline copy and the real-product inputs

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

LOAD_SNIPPET = """
import sys, time
started = time.perf_counter()
from rakuten_train.export.bundle import load_keras_bundle
imported = time.perf_counter()
load_keras_bundle(sys.argv[1])
print(f"{imported - started:.4f} {time.perf_counter() - imported:.4f}")
"""


def load_seconds(bundle: Path) -> tuple[float, float]:
    """``(import s, load s)`` of the Keras model in a fresh interpreter (nothing cached)."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET, str(bundle)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def with_optimizer_state(bundle: Path, target: Path) -> Path:
    """Copy of ``bundle`` whose ``model.keras`` also holds Adam's state, as training saved it."""
    import shutil  # noqa: PLC0415

    from rakuten_core.bundle import MODEL_FILE  # noqa: PLC0415
    from rakuten_train.export.bundle import load_keras_bundle  # noqa: PLC0415
    from rakuten_train.model import compile_model  # noqa: PLC0415
    from rakuten_train.params import load_params  # noqa: PLC0415

    loaded = load_keras_bundle(bundle)
    model = loaded.model
    params = load_params(None, {k: v for k, v in loaded.metadata.params.items() if "." not in k})
    compile_model(model, params)
    model.optimizer.build(model.trainable_variables)  # the slots training fills
    shutil.copytree(bundle, target)
    model.save(target / MODEL_FILE)  # Keras 3 native format: saves the optimizer when compiled
    return target


def real_inputs(image_size: int, rows: int = 64) -> object:
    """Model inputs for real products: shared texts and 500x500 JPEGs through rakuten_core."""
    import csv  # noqa: PLC0415

    from rakuten_core.image import decode_image_file  # noqa: PLC0415
    from rakuten_core.inputs import model_inputs  # noqa: PLC0415
    from rakuten_core.text import product_text  # noqa: PLC0415
    from tests.utils.paths import SHARED_DATA  # noqa: PLC0415

    with (SHARED_DATA / "raw_sample" / "X_test_update.csv").open(encoding="utf-8") as fh:
        texts = [product_text(r[1], r[2]) for r in list(csv.reader(fh))[1 : rows + 1]]
    jpegs = sorted((SHARED_DATA / "images" / "test").glob("*.jpg"))[: len(texts)]
    images = [decode_image_file(p, size=image_size) for p in jpegs]
    images += [None] * (len(texts) - len(images))
    return model_inputs(texts, images, image_size=image_size)


@app.command()
def bundle(
    model: Annotated[Path, typer.Option(help="A bundle directory (save_bundle's output).")] = ROOT
    / "models"
    / "current",
    loads: Annotated[int, typer.Option(min=1, help="Fresh-process loads per variant.")] = 5,
) -> None:
    """Size, load time and probabilities: the bundle as saved vs with the optimizer state."""
    import numpy as np  # noqa: PLC0415

    from rakuten_core.bundle import MODEL_FILE  # noqa: PLC0415
    from rakuten_train.export.bundle import load_keras_bundle  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        full = with_optimizer_state(model, Path(tmp) / "with-optimizer")
        variants = {"as saved (inference only)": model, "with optimizer state": full}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(loads):  # alternated so that machine noise hits both alike
            for name, path in variants.items():
                times[name].append(load_seconds(path))
        loaded = {name: load_keras_bundle(path) for name, path in variants.items()}
        inputs = real_inputs(loaded["as saved (inference only)"].image_size)
        probs = [b.predict_proba(inputs) for b in loaded.values()]  # type: ignore[arg-type]
        diff = float(np.abs(probs[0] - probs[1]).max())
        typer.echo(f"bundle {model}, {os.cpu_count()} cores, load average {_load()}")
        typer.echo("| variant | model.keras MB | load s (median) | import s | load avg |")
        typer.echo("|---|---:|---:|---:|---:|")
        for name, path in variants.items():
            size = (path / MODEL_FILE).stat().st_size / 1e6
            load = statistics.median(t[1] for t in times[name])
            imp = statistics.median(t[0] for t in times[name])
            typer.echo(f"| {name} | {size:.1f} | {load:.2f} | {imp:.2f} | {_load()} |")
        typer.echo(f"max |p_saved - p_with_optimizer| on {len(probs[0])} real products: {diff:g}")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def disk_usage(repo: Path) -> dict[str, int]:
    """Bytes on disk (allocated blocks) per area; each inode counted once in ``total``."""
    areas = {
        "models/current": repo / "models" / "current",
        ".dvc/cache": repo / ".dvc" / "cache",
        "mlartifacts": repo / "mlartifacts",
        "mlflow.db": repo / "mlflow.db",
        "data": repo / "data",
    }
    seen: set[tuple[int, int]] = set()
    usage = dict.fromkeys(areas, 0) | {"total (hardlinks once)": 0}
    for name, root in areas.items():
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            st = file.lstat()
            usage[name] += st.st_blocks * 512
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                usage["total (hardlinks once)"] += st.st_blocks * 512
    return usage


def model_copies(repo: Path) -> tuple[int, int]:
    """Files holding the current ``model.keras`` bytes, and how many distinct inodes they are."""
    current = repo / "models" / "current" / "model.keras"
    size, digest = current.stat().st_size, _md5(current)
    files = [
        p
        for area in (repo / "models", repo / ".dvc" / "cache", repo / "mlartifacts")
        if area.exists()
        for p in area.rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_size == size and _md5(p) == digest
    ]
    return len(files), len({(p.stat().st_dev, p.stat().st_ino) for p in files})


@app.command()
def pipeline(
    source: Annotated[Path, typer.Option(help="Repository (working tree) to copy.")] = ROOT,
    epochs: Annotated[int, typer.Option(min=1, help="train.epochs (size does not depend).")] = 2,
    keep: Annotated[bool, typer.Option(help="Keep the copy and print its path.")] = False,
) -> None:
    """Bytes on disk after `dvc repro`, and what a second training run adds."""
    from tests.utils.pipeline_repo import make_pipeline_repo, run_in, set_params  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    repo = make_pipeline_repo(
        work / "repo", source.resolve(), **{"data.source": "sample", "train.epochs": epochs}
    )
    rows = []
    for run, seed in ((1, None), (2, 43)):
        if seed is not None:
            set_params(repo, **{"train.seed": seed})
        started = time.perf_counter()
        run_in(repo, "dvc", "repro", timeout=3600)
        seconds = time.perf_counter() - started
        copies, distinct = model_copies(repo)
        rows.append((run, seconds, disk_usage(repo), copies, distinct, _load()))
    size = (repo / "models" / "current" / "model.keras").stat().st_size
    typer.echo(f"source {source}, {os.cpu_count()} cores, model.keras {size / 1e6:.1f} MB")
    areas = list(rows[0][2])
    typer.echo("| after | s | " + " | ".join(f"{a} MB" for a in areas) + " | model.keras copies "
               "(distinct) | load avg |")  # fmt: skip
    typer.echo("|---" * (len(areas) + 4) + "|")
    for run, seconds, usage, copies, distinct, load in rows:
        cells = " | ".join(f"{usage[a] / 1e6:.1f}" for a in areas)
        typer.echo(f"| run {run} | {seconds:.0f} | {cells} | {copies} ({distinct}) | {load} |")
    added = rows[1][2]["total (hardlinks once)"] - rows[0][2]["total (hardlinks once)"]
    typer.echo(f"second training run added {added / 1e6:.1f} MB on disk")
    if keep:
        typer.echo(f"copy kept: {repo}")
    else:
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
