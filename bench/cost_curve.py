"""Cost as work grows (issue #24): wall time, CPU time and peak memory of each pipeline stage.

For each size in ``--rows`` (labelled rows; the real data has 84,916), in a work dir under /tmp:

1. ``data``: ``rakuten-data sample`` writes a synthetic raw dataset of that many labelled rows
   and ``rows x 13,812 / 84,916`` unlabelled test rows (the real train/test proportion), JPEGs of
   ``--image-size`` px (default: ``train.image_size`` of params.yaml, what ``make run`` uses);
2. ``prepare``: ``rakuten-data prepare`` with the values of params.yaml's ``prepare:`` section;
3. ``train``: ``rakuten-train train`` for ``--epochs`` (default 1) with ``--set epochs=N``, no
   early stopping, ``--no-register`` and MLflow on a SQLite file in the work dir (the train
   stage's own evaluation on the test split and its bundle export are included, as in DVC);
4. ``evaluate``: ``rakuten-train evaluate`` of that bundle on the test split;
5. ``predict``: ``rakuten-predict predict`` on the unlabelled ``X_test_update.csv``, with the
   batch size and workers of params.yaml's ``predict:`` section.

Each stage is one child process (the venv's CLI), measured from outside:

- ``wall s``: ``time.perf_counter`` around the child (process start and imports included);
- ``CPU s``: user + sys of the child and every descendant it waited for (``os.wait4``);
- ``peak RSS MB``: ``ru_maxrss`` of ``os.wait4``, the largest single process (the CLI itself);
- ``tree RSS MB``: the sum of RSS over the child's process tree, polled every 0.2 s with psutil
  (catches decode worker processes; a peak shorter than the poll can be missed);
- ``load``: the 1-minute load average at the stage's start and end (the machine is shared, so
  wall time is only comparable at similar load; CPU time is the steadier figure).

Growth between consecutive sizes is ``(cost ratio) / (rows ratio)``: 1 is linear, > 1 means the
cost grows faster than the rows. Fixed costs (imports, model build) pull that ratio below 1 at
small sizes, so the marginal CPU and RSS per added row are printed beside it: a marginal cost
that rises from one pair of sizes to the next is a variable part growing faster than linearly.

``--extrapolate N`` prints each stage's cost at N rows from the last two sizes: time both as a
power law through them (``t = a * rows^b``) and as a straight line (fixed + per-row part), peak
RSS as a straight line; these are estimates, marked so. ``--results`` keeps each measurement as a
JSON line; ``--previous`` reports earlier results with a new run's (or alone, with ``--rows ''``).

    uv run --frozen python bench/cost_curve.py [--rows 2000,20000,84916] [--image-size 64]
        [--epochs 1] [--extrapolate 84916] [--plot /tmp/cost_curve.png] [--work /tmp/cost_curve]
        [--results /tmp/cost_curve/results.jsonl] [--previous FILE ...]

Synthetic texts are shorter than real listings (mean ~100 vs ~500 characters), so the text
vectorisers' cost at a given row count is lower here than on the real data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL_TRAIN_ROWS, REAL_TEST_ROWS = 84_916, 13_812
STAGES = ("data", "prepare", "train", "evaluate", "predict")

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@dataclass(frozen=True)
class Cost:
    rows: int
    stage: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    tree_rss_mb: float
    load_start: float
    load_end: float


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # exited between the listing and the read
            pass
    return total


def measure(cmd: list[str], *, rows: int, stage: str, log: Path, env: dict[str, str]) -> Cost:
    """Run ``cmd`` to completion; its output goes to ``log``; a failure stops the benchmark."""
    load_start = os.getloadavg()[0]
    with log.open("w") as out:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        peak_tree, done = 0, threading.Event()

        def poll() -> None:
            nonlocal peak_tree
            try:
                proc = psutil.Process(child.pid)
                while not done.wait(0.2):
                    peak_tree = max(peak_tree, _tree_rss(proc))
            except psutil.Error:  # the child is gone: wait4 has or will have reaped it
                pass

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        poller.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{stage} at {rows} rows failed ({child.returncode}):\n{tail}")
    return Cost(
        rows=rows,
        stage=stage,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        tree_rss_mb=max(peak_tree, usage.ru_maxrss * 1024) / 2**20,
        load_start=load_start,
        load_end=os.getloadavg()[0],
    )


def stage_commands(
    work: Path, rows: int, *, image_size: int, epochs: int, params: dict[str, Any]
) -> dict[str, list[str]]:
    raw, processed, bundle = work / "raw", work / "processed", work / "bundle"
    prep, pred = params["prepare"], params["predict"]
    test_rows = max(1, round(rows * REAL_TEST_ROWS / REAL_TRAIN_ROWS))
    return {
        "data": [
            str(BIN / "rakuten-data"), "sample", "--out", str(raw), "--train-rows", str(rows),
            "--test-rows", str(test_rows), "--image-size", str(image_size),
            "--seed", str(params["data"]["seed"]),
        ],
        "prepare": [
            str(BIN / "rakuten-data"), "prepare", "--raw", str(raw), "--out", str(processed),
            "--val-size", str(prep["val_size"]), "--test-size", str(prep["test_size"]),
            "--seed", str(prep["seed"]), "--min-class-rows", str(prep["min_class_rows"]),
            "--no-progress",
        ],
        "train": [
            str(BIN / "rakuten-train"), "train", "--data", str(processed), "--raw", str(raw),
            "--params", str(ROOT / "params.yaml"), "--bundle-out", str(bundle),
            "--reports", str(work / "reports" / "train"), "--no-register",
            "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--experiment", "cost-curve",
            "--set", f"epochs={epochs}", "--set", f"image_size={image_size}",
            "--set", "early_stopping_patience=0",
        ],
        "evaluate": [
            str(BIN / "rakuten-train"), "evaluate", "--bundle", str(bundle),
            "--data", str(processed), "--raw", str(raw), "--reports", str(work / "reports"),
        ],
        "predict": [
            str(BIN / "rakuten-predict"), "predict", "--model", str(bundle),
            "--csv", str(raw / "X_test_update.csv"), "--images", str(raw / "images" / "image_test"),
            "--out", str(work / "predictions" / "test.csv"),
            "--summary", str(work / "predictions" / "test.summary.json"),
            "--batch-size", str(pred["batch_size"]), "--workers", str(pred["workers"]),
            "--no-progress",
        ],
    }  # fmt: skip


def table(costs: list[Cost]) -> str:
    lines = [
        "| rows | stage | wall s | CPU s | peak RSS MB | tree RSS MB | load start→end |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c.rows:,} | {c.stage} | {c.wall_s:.1f} | {c.cpu_s:.1f} | {c.peak_rss_mb:,.0f} "
            f"| {c.tree_rss_mb:,.0f} | {c.load_start:.1f}→{c.load_end:.1f} |"
        )
    return "\n".join(lines)


def growth(costs: list[Cost]) -> str:
    """Per stage and pair of consecutive sizes: cost ratio / rows ratio (1 = linear).

    Fixed costs (process start, imports, model build) pull the ratio below 1 at small sizes, so
    the marginal cost per added row is printed too: when it rises from one pair of sizes to the
    next, the stage's variable part grows faster than linearly.
    """
    by = {(c.stage, c.rows): c for c in costs}
    sizes = sorted({c.rows for c in costs})
    lines = [
        "| stage | rows | rows ×| wall ÷ rows× | CPU ÷ rows× | RSS ÷ rows× | CPU exponent b "
        "| CPU ms per added row | RSS KB per added row |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in STAGES:
        for small, big in zip(sizes, sizes[1:], strict=False):
            a, z = by.get((stage, small)), by.get((stage, big))
            if a is None or z is None:
                continue
            r = big / small
            lines.append(
                f"| {stage} | {small:,}→{big:,} | {r:.2f} | {z.wall_s / a.wall_s / r:.2f} "
                f"| {z.cpu_s / a.cpu_s / r:.2f} | {z.peak_rss_mb / a.peak_rss_mb / r:.2f} "
                f"| {math.log(z.cpu_s / a.cpu_s) / math.log(r):.2f} "
                f"| {(z.cpu_s - a.cpu_s) / (big - small) * 1e3:.2f} "
                f"| {(z.peak_rss_mb - a.peak_rss_mb) / (big - small) * 1024:.1f} |"
            )
    return "\n".join(lines)


def extrapolate(costs: list[Cost], target: int) -> str:
    """Each stage's cost at ``target`` rows from the two largest sizes measured.

    Two models through the same two points: a power law (``a * rows^b``) and a straight line
    (fixed + per-row). When the smaller size is still dominated by fixed costs (imports, model
    build), ``b`` comes out below 1 and the straight line is the higher, safer figure.
    """
    sizes = sorted({c.rows for c in costs})
    if len(sizes) < 2 or target in sizes:
        return ""
    small, big = sizes[-2], sizes[-1]
    by = {(c.stage, c.rows): c for c in costs}

    def power(x: float, y: float) -> float:
        return float(y * (y / x) ** (math.log(target / big) / math.log(big / small)))

    def line(x: float, y: float) -> float:
        return y + (y - x) / (big - small) * (target - big)

    lines = [
        f"ESTIMATE at {target:,} rows, from {small:,} and {big:,} rows "
        "(power law / straight line; RSS: straight line):",
        "",
        "| stage | wall s (est.) | CPU s (est.) | peak RSS MB (est.) | tree RSS MB (est.) |",
        "|---|---:|---:|---:|---:|",
    ]
    total_power = total_line = 0.0
    for stage in STAGES:
        a, z = by.get((stage, small)), by.get((stage, big))
        if a is None or z is None:
            continue
        total_power += power(a.wall_s, z.wall_s)
        total_line += line(a.wall_s, z.wall_s)
        lines.append(
            f"| {stage} | {power(a.wall_s, z.wall_s):,.0f} / {line(a.wall_s, z.wall_s):,.0f} "
            f"| {power(a.cpu_s, z.cpu_s):,.0f} / {line(a.cpu_s, z.cpu_s):,.0f} "
            f"| {line(a.peak_rss_mb, z.peak_rss_mb):,.0f} "
            f"| {line(a.tree_rss_mb, z.tree_rss_mb):,.0f} |"
        )
    lines.append(f"| all | {total_power:,.0f} / {total_line:,.0f} | | | |")
    return "\n".join(lines)


def plot(costs: list[Cost], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_cpu, ax_rss) = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage in STAGES:
        points = sorted((c.rows, c.cpu_s, c.peak_rss_mb) for c in costs if c.stage == stage)
        if not points:
            continue
        rows = [p[0] for p in points]
        ax_cpu.plot(rows, [p[1] for p in points], marker="o", label=stage)
        ax_rss.plot(rows, [p[2] for p in points], marker="o", label=stage)
    sizes = sorted({c.rows for c in costs})
    first = max((c for c in costs if c.rows == sizes[0]), key=lambda c: c.cpu_s)
    ax_cpu.plot(  # slope 1 on log-log axes: a stage steeper than this grows faster than linear
        sizes, [first.cpu_s * s / sizes[0] for s in sizes], "k:", label=f"linear from {first.stage}"
    )
    for ax, title in ((ax_cpu, "CPU s (user+sys)"), (ax_rss, "peak RSS MB (largest process)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("labelled rows")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_rss.axhline(8192, color="r", linestyle="--", label="8 GB")
    ax_cpu.legend(fontsize=8)
    ax_rss.legend(fontsize=8)
    fig.suptitle("Pipeline cost by stage as the data grows (bench/cost_curve.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


@app.command()
def main(
    rows: Annotated[str, typer.Option(help="Comma-separated labelled row counts.")] = (
        "2000,20000,84916"
    ),
    image_size: Annotated[
        int | None, typer.Option(help="Image side in px (default: params.yaml train.image_size).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 1,
    work: Annotated[Path, typer.Option(help="Work dir (one sub-dir per size).")] = Path(
        "/tmp/cost_curve"
    ),
    keep: Annotated[bool, typer.Option(help="Keep each size's data after its run.")] = False,
    extrapolate_to: Annotated[
        int | None, typer.Option("--extrapolate", help="Estimate each stage's cost at N rows.")
    ] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot.")] = None,
    results: Annotated[
        Path | None, typer.Option(help="JSON-lines file: each stage's cost appended as measured.")
    ] = None,
    previous: Annotated[
        list[Path] | None,
        typer.Option("--previous", help="Results files of earlier runs, reported with this one."),
    ] = None,
) -> None:
    """Run data -> prepare -> train -> evaluate -> predict at each size; print the tables."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    size = image_size or int(params["train"]["image_size"])
    sizes = sorted({int(r) for r in rows.split(",") if r.strip()})  # empty: report --previous
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    costs = [
        Cost(**json.loads(line)) for f in previous or [] for line in f.read_text().splitlines()
    ]
    typer.echo(f"image size {size} px, {epochs} epoch(s), {os.cpu_count()} CPUs, work {work}")
    for n in sizes:
        run_dir = work / f"rows{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        commands = stage_commands(run_dir, n, image_size=size, epochs=epochs, params=params)
        for stage in STAGES:
            typer.echo(f"{time.strftime('%H:%M:%S')} {n:,} rows: {stage} ...", err=True)
            cost = measure(
                commands[stage], rows=n, stage=stage, log=run_dir / f"{stage}.log", env=env
            )
            costs.append(cost)
            if results:
                with results.open("a") as fh:
                    fh.write(json.dumps(dataclasses.asdict(cost)) + "\n")
            typer.echo(
                f"  {cost.wall_s:.1f} s wall, {cost.cpu_s:.1f} s CPU, "
                f"{cost.peak_rss_mb:,.0f} MB peak, load {cost.load_end:.1f}",
                err=True,
            )
        if not keep:
            shutil.rmtree(run_dir / "raw", ignore_errors=True)
            shutil.rmtree(run_dir / "processed", ignore_errors=True)
    typer.echo("\n" + table(costs) + "\n")
    if len({c.rows for c in costs}) > 1:
        typer.echo(growth(costs) + "\n")
    if extrapolate_to:
        typer.echo(extrapolate(costs, extrapolate_to) + "\n")
    if plot_path:
        plot(costs, plot_path)
        typer.echo(f"plot: {plot_path}")


if __name__ == "__main__":
    app()
