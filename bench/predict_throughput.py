"""Batch prediction throughput against the sum-of-parts bound (decode + model, all cores busy).

Builds, in a temp dir, a test set shaped like the official one (``--rows`` products, default
13,812): the real challenge texts cycled, each product pointing at one of the ~200 real 500x500
JPEGs of ``../shared/data/rakuten`` through a symlink named as in the challenge archive. Then:

1. **parts**, each alone on one thread, CPU time per row:
   ``decode`` = everything a row costs before the model (CSV record, text cleaning, JPEG read +
   decode + resize: ``rakuten_predict.engine.prepare_row``), measured with ``thread_time``;
   ``model`` = stacking the batch (``model_inputs``) + ``Bundle.predict_proba``, measured with
   ``process_time`` (TensorFlow's own threads included) after a warm-up call.
2. **bound** = ``cores / (decode_cpu + model_cpu)`` rows/s: what the machine gives when every
   core is busy with useful work and nothing else (no pipeline can beat it). The parts are
   measured before and after the end-to-end runs and averaged (this machine's speed drifts over
   minutes); both are printed.
3. **end to end**: the real ``rakuten-predict predict`` CLI in a child process; rows/s from its
   summary (process start and model load excluded), its CPU per row (the decode processes
   included) and peak RSS (the CLI process's, not its decode processes'), and rows/s
   divided by the bound. With ``--baseline DIR`` (a source tree, e.g. ``git archive`` of an older
   commit) the CLI of that tree runs too, alternated with the current one, for before/after
   figures from one command under the same load. With ``--baseline-model DIR`` the current CLI
   also runs on that bundle (e.g. the same model exported another way), alternated likewise,
   with its own parts and bound, and the two predictions CSVs are compared row by row.

Every figure is printed with the 1-minute load average. Asserts nothing.

    uv run --frozen python bench/predict_throughput.py --model models/current [--baseline DIR]
        [--baseline-model DIR]
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
SOURCE_DIRS = ("libs/core/src", "services/predict/src")
sys.path.insert(0, str(ROOT))  # for the tests.utils tiny bundle when no model is given

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def load_avg() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def build_dataset(work: Path, rows: int) -> tuple[Path, Path]:
    """A challenge-format CSV of ``rows`` products and an image folder of symlinks to real JPEGs."""
    with (SHARED / "raw_sample" / "X_test_update.csv").open(encoding="utf-8", newline="") as fh:
        texts = [(r[1], r[2]) for r in list(csv.reader(fh))[1:]]
    jpegs = sorted((SHARED / "images" / "test").glob("*.jpg")) + sorted(
        (SHARED / "images" / "train").glob("*.jpg")
    )
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = work / "X_test.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "designation", "description", "productid", "imageid"])
        for i in range(rows):
            designation, description = texts[i % len(texts)]
            productid, imageid = 10_000_000 + i, 20_000_000 + i
            writer.writerow([84_916 + i, designation, description, productid, imageid])
            link = images / f"image_{imageid}_product_{productid}.jpg"
            if not link.exists():
                link.symlink_to(jpegs[i % len(jpegs)])
    return path, images


def measure_parts(
    model_dir: Path, csv_path: Path, images: Path, *, batch: int, rows: int
) -> dict[str, float]:
    """CPU ms per row of decoding (one thread) and of the model (stack + predict), each alone."""
    from rakuten_core.bundle import load_bundle
    from rakuten_core.inputs import model_inputs
    from rakuten_predict.engine import prepare_row
    from rakuten_predict.reader import ProductCsv, batched

    bundle = load_bundle(model_dir)
    size = bundle.image_size
    prepared = []
    cpu = time.thread_time()
    for row in ProductCsv(csv_path).rows():
        prepared.append(prepare_row(row, images_dir=images, image_size=size))
        if len(prepared) == rows:
            break
    decode_ms = (time.thread_time() - cpu) * 1000 / len(prepared)

    chunks = list(batched(iter(prepared), batch))
    chunks = [c for c in chunks if len(c) == batch] or chunks  # one input shape: one trace

    def call(chunk: list) -> int:  # type: ignore[type-arg]
        inputs = model_inputs([p.text for p in chunk], [p.image for p in chunk], image_size=size)
        return len(bundle.predict_proba(inputs))

    call(chunks[0])  # trace / warm up
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while done < rows:
        done += call(chunks[(done // batch) % len(chunks)])
    wall = time.perf_counter() - started
    return {
        "decode_ms": decode_ms,
        "model_ms": (time.process_time() - cpu) * 1000 / done,
        "model_rows_per_s": done / wall,
    }


def end_to_end(
    model_dir: Path,
    csv_path: Path,
    images: Path,
    out: Path,
    *,
    batch: int,
    workers: int,
    source: Path,
) -> dict[str, float]:
    """Run the CLI of ``source`` in a child process; rows/s (load excluded), CPU/row, peak RSS."""
    cli = Path(sys.executable).with_name("rakuten-predict")
    env = {**os.environ, "RAKUTEN_LOG_DIR": str(out.parent / "logs")}
    env["PYTHONPATH"] = os.pathsep.join(str(source / d) for d in SOURCE_DIRS)
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            str(cli), "predict", "--model", str(model_dir), "--csv", str(csv_path),
            "--images", str(images), "--out", str(out), "--batch-size", str(batch),
            "--workers", str(workers), "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    peak = PeakRss(child.pid)
    _, status, _ = os.wait4(child.pid, 0)
    peak.stop()
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"rakuten-predict failed: {err[-2000:]}")
    summary = json.loads(out.with_suffix(".summary.json").read_text(encoding="utf-8"))
    return {
        "rows_per_s": summary["throughput"]["rows_per_second"],
        # CPU of the prediction loop (all threads), as the CLI measures it: no start-up, no load
        "cpu_ms_per_row": summary["throughput"]["cpu_seconds"] * 1000 / summary["rows"],
        "wall_s": wall,
        "peak_rss_mib": peak.mib,
        "workers": summary["throughput"]["workers"],
    }


class PeakRss:
    """The peak resident memory (``VmHWM``) of a running process, read every 0.1 s.

    Not ``wait4``'s ``ru_maxrss``: Linux carries the memory peak of the process that forked
    the child across ``execve``, so the CLI would report this bench's own peak (it has loaded
    the bundles to time the parts) whenever that is larger.
    """

    def __init__(self, pid: int) -> None:
        self.mib = 0.0
        self._status = Path(f"/proc/{pid}/status")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.wait(0.1):
            try:
                text = self._status.read_text()
            except OSError:  # exited; a zombie has no VmHWM line either
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.mib = max(self.mib, int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def same_predictions(a: Path, b: Path) -> bool:
    """Both CSVs hold the same rows in the same order, probabilities included (bytes equal)."""
    return a.read_bytes() == b.read_bytes()


def compare_predictions(a: Path, b: Path) -> str:
    """Rows with the same predicted code, and the largest gap of the best class' probability."""
    with a.open(newline="", encoding="utf-8") as fa, b.open(newline="", encoding="utf-8") as fb:
        pairs = list(zip(csv.DictReader(fa), csv.DictReader(fb), strict=True))
    same = sum(x["prdtypecode"] == y["prdtypecode"] for x, y in pairs)
    gap = max((abs(float(x["probability"]) - float(y["probability"])) for x, y in pairs), default=0)
    return (
        f"same predicted code on {same} of {len(pairs)} rows, best-class probability gap {gap:.1e}"
    )


@app.command()
def main(
    model: Annotated[Path | None, typer.Option(help="Bundle (default models/current)")] = None,
    rows: Annotated[int, typer.Option(min=1, help="Rows of the generated test set")] = 13_812,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    workers: Annotated[list[int] | None, typer.Option(help="Decode workers (0 = CLI's)")] = None,
    parts_rows: Annotated[int, typer.Option(min=64, help="Rows timed for each part")] = 2048,
    baseline: Annotated[Path | None, typer.Option(help="Source tree run as 'before' too")] = None,
    baseline_model: Annotated[
        Path | None, typer.Option(help="Bundle run as 'before' too, by the current sources")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="End-to-end runs per variant")] = 1,
    keep: Annotated[bool, typer.Option(help="Keep the work folder")] = False,
) -> None:
    """Parts, bound and end-to-end rows/s on a generated 13,812-row test set."""
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    model_dir = model
    if model_dir is None and (ROOT / "models" / "current").is_dir():
        model_dir = ROOT / "models" / "current"
    if model_dir is None:
        from tests.utils.predict_bundle import make_predict_bundle

        model_dir = make_predict_bundle(work / "tiny-bundle", image_size=64)
        typer.echo("no --model and no models/current: using the tiny test bundle (64 px)")
    from rakuten_core.bundle import read_metadata

    meta = read_metadata(model_dir)
    cores = len(os.sched_getaffinity(0))
    typer.echo(f"model {meta.model_name} {meta.model_version}, image {meta.image_size}px")
    typer.echo(f"cores {cores}, rows {rows}, batch {batch_size}, load average {load_avg()}")

    csv_path, images = build_dataset(work, rows)

    models = {"current": model_dir} | ({"baseline model": baseline_model} if baseline_model else {})

    def parts_now(bundle: Path) -> dict[str, float]:
        return measure_parts(
            bundle, csv_path, images, batch=batch_size, rows=min(parts_rows, rows),
        )  # fmt: skip

    before = {name: parts_now(bundle) for name, bundle in models.items()}
    for name, parts in before.items():
        typer.echo(f"\nparts before the runs, {name} bundle (load average {load_avg()}):")
        typer.echo(f"  decode CPU {parts['decode_ms']:.2f} ms/row (one thread)")
        typer.echo(
            f"  model CPU {parts['model_ms']:.2f} ms/row "
            f"(alone: {parts['model_rows_per_s']:.0f} rows/s wall)"
        )

    # (name, source tree, bundle, whose parts bound it)
    variants = [("current", ROOT, model_dir, "current")]
    if baseline:
        variants.append(("baseline", baseline.resolve(), model_dir, "current"))
    if baseline_model:
        variants.append(("baseline model", ROOT, baseline_model, "baseline model"))
    results: list[tuple[str, dict[str, float], str, str]] = []
    outputs: dict[str, Path] = {}
    for n in range(rounds):
        for w in workers or [0]:
            for name, source, bundle, parts_of in variants:
                out = work / f"out-{name.replace(' ', '-')}-w{w}-{n}" / "pred.csv"
                r = end_to_end(
                    bundle, csv_path, images, out, batch=batch_size, workers=w, source=source
                )
                outputs.setdefault(name, out)
                label = f"{name}, {r['workers']} workers, run {n + 1}"
                results.append((label, r, load_avg(), parts_of))
    # The parts again after the runs: this machine's speed drifts over minutes, so the bound is
    # taken from both measurements around the runs, and both are printed.
    per_row: dict[str, float] = {}
    bound: dict[str, float] = {}
    for name, bundle in models.items():
        after = parts_now(bundle)
        parts = {k: (before[name][k] + after[k]) / 2 for k in ("decode_ms", "model_ms")}
        per_row[name] = parts["decode_ms"] + parts["model_ms"]
        bound[name] = cores * 1000 / per_row[name]
        typer.echo(f"\nparts after the runs, {name} bundle (load average {load_avg()}):")
        typer.echo(
            f"  decode CPU {after['decode_ms']:.2f} ms/row, model CPU {after['model_ms']:.2f} "
            "ms/row"
        )
        typer.echo(
            f"bound = cores / (decode + model), parts averaged over before and after = {cores} x "
            f"1000 / ({parts['decode_ms']:.2f} + {parts['model_ms']:.2f}) = "
            f"{bound[name]:.0f} rows/s"
        )
    typer.echo(
        "\n| run | rows/s | / bound | CPU ms/row | parts / CPU | cores used | wall s "
        "| peak RSS MiB | load avg |"
    )
    typer.echo("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r, load, parts_of in results:
        # rows/s / bound = (parts / CPU: work done per CPU spent) x (cores used / cores)
        efficiency = per_row[parts_of] / r["cpu_ms_per_row"]
        used = r["rows_per_s"] * r["cpu_ms_per_row"] / 1000
        typer.echo(
            f"| {label} | {r['rows_per_s']:.0f} | {r['rows_per_s'] / bound[parts_of]:.2f} "
            f"| {r['cpu_ms_per_row']:.2f} | {efficiency:.2f} | {used:.2f} | {r['wall_s']:.1f} "
            f"| {r['peak_rss_mib']:.0f} | {load} |"
        )
    if baseline:
        same = same_predictions(outputs["current"], outputs["baseline"])
        typer.echo(f"\npredictions CSV identical to the baseline's: {same}")
    if baseline_model:
        compared = compare_predictions(outputs["current"], outputs["baseline model"])
        typer.echo(f"\nagainst the baseline model's predictions: {compared}")
    typer.echo(
        "\nrows/s and CPU ms/row exclude process start-up and model load (the CLI's own figures);"
        f"\nbound: {cores} cores / (decode + model CPU per row), every core busy with that work;"
        "\nrows/s / bound = (parts / CPU) x (cores used / cores): CPU lost to the pipeline itself"
        "\n(contention, overhead) vs cores it did not get (idle, or taken by other processes)."
    )
    if keep:
        typer.echo(f"\nwork folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
