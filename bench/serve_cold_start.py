"""Where a serving worker's cold start goes: imports, model load, warm-up, heap freeze.

Runs, in a fresh interpreter per round, what ``rakuten-serve run`` with one worker does before
``/health/ready`` answers 200 (imports of the CLI, uvicorn and the app; the bundle's ONNX
runtime; the warm-up for the default max batch; the heap freeze), and prints wall and CPU
seconds per phase. CPU seconds change less than wall seconds with the machine's load, so both
are printed, with the load average.

With ``--baseline-src`` (another PYTHONPATH: older sources) both run in alternation, round
after round (before/after in one run). Asserts nothing.

    uv run --frozen python bench/serve_cold_start.py --model models/current
    uv run --frozen python bench/serve_cold_start.py --model DIR --baseline-src /tmp/old/src
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)

_PHASES = r"""
import gc, json, os, sys, time
phases, last = [], [time.perf_counter(), time.process_time()]
def mark(name):
    now = [time.perf_counter(), time.process_time()]
    phases.append([name, now[0] - last[0], now[1] - last[1]])
    last[:] = now
import rakuten_serve.cli, uvicorn; mark("import CLI + uvicorn")
import rakuten_serve.asgi; mark("import the app (FastAPI, SQLAlchemy, ...)")
from rakuten_core.bundle import load_bundle
from rakuten_serve.predictor import LoadedModel
bundle = load_bundle(sys.argv[1])
loaded = LoadedModel(bundle, sys.argv[1]); mark("load the bundle")
loaded.warm_up(int(sys.argv[2])); mark(f"warm-up (max batch {sys.argv[2]})")
gc.freeze(); mark("gc.freeze")
print(json.dumps(phases))
"""


def _round(model: Path, max_batch: int, pythonpath: str | None) -> list[list[object]]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-c", _PHASES, str(model), str(max_batch)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=900,
    )
    phases: list[list[object]] = json.loads(out.stdout.strip().splitlines()[-1])
    return phases


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="Bundle directory.")],
    rounds: Annotated[int, typer.Option(min=1, help="Fresh interpreters per variant.")] = 2,
    max_batch: Annotated[int, typer.Option(min=1, help="RAKUTEN_BATCH_MAX_SIZE.")] = 32,
    baseline_src: Annotated[
        str | None, typer.Option(help="PYTHONPATH of older sources, run in alternation.")
    ] = None,
) -> None:
    """Print the phases of a cold start, wall and CPU seconds, per round."""
    variants: dict[str, str | None] = {"current": None}
    if baseline_src:
        variants["baseline"] = baseline_src
    print(f"model {model}; {os.cpu_count()} cores")
    print("| variant | round | phase | wall s | CPU s | load 1/5/15 |\n|---|---|---|---|---|---|")
    for i in range(rounds):
        for name, path in variants.items():
            phases = _round(model, max_batch, path)
            load = "/".join(f"{x:.1f}" for x in os.getloadavg())
            for phase, wall, cpu in phases:
                print(f"| {name} | {i + 1} | {phase} | {wall:.2f} | {cpu:.2f} | {load} |")
            wall_total = sum(float(p[1]) for p in phases)  # type: ignore[arg-type]
            cpu_total = sum(float(p[2]) for p in phases)  # type: ignore[arg-type]
            print(f"| {name} | {i + 1} | **total** | {wall_total:.2f} | {cpu_total:.2f} | {load} |")


if __name__ == "__main__":
    app()
