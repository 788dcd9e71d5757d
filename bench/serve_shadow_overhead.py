"""What a challenger in shadow costs the champion's answers: share 0 vs share 1, side by side.

Two real ``rakuten-serve run`` servers (one worker each) start together on 127.0.0.1 from the
same bundle, both with the same challenger loaded (a copy of the bundle under another version,
so the challenger's work is as heavy as the champion's): one with ``RAKUTEN_SHADOW_SHARE=0``,
one with ``RAKUTEN_SHADOW_SHARE=1``. ``wrk`` (the helpers of ``tests/utils/wrk.py``) posts
``/predict`` to each in turn, ``--rounds`` times per concurrency, so drift in the machine's load
hits both. Prints, per run, requests/s and the champion's latency (p50, p99 as wrk sees them),
non-200 answers, the load average, and for the shadow server how many requests the challenger
scored and dropped (from its ``/metrics``). Asserts nothing.

    uv run --frozen python bench/serve_shadow_overhead.py
    uv run --frozen python bench/serve_shadow_overhead.py --model models/current --duration 15

Without ``--model`` it uses ``models/current`` when present, else the small real bundle of the
serving tests (``tests/utils/serve_bundle.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils helpers (bundle, users, servers, wrk)

app = typer.Typer(add_completion=False)


def _model(model: Path | None, work: Path) -> Path:
    if model is not None:
        return model
    if (ROOT / "models" / "current" / "bundle.json").is_file():
        return ROOT / "models" / "current"
    from tests.utils.serve_bundle import make_serve_bundle  # noqa: PLC0415

    target = work / "bundle"
    make_serve_bundle(target)
    return target


def _shadow_counts(base_url: str) -> tuple[float, float]:
    from tests.utils.prom_text import sample_value  # noqa: PLC0415

    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    scored = sum(
        sample_value(text, "rakuten_shadow_predictions_total", agreement=a) or 0
        for a in ("true", "false")
    )
    dropped = sum(
        sample_value(text, "rakuten_shadow_dropped_total", reason=r) or 0
        for r in ("queue_full", "error")
    )
    return scored, dropped


@app.command()
def main(
    model: Annotated[Path | None, typer.Option(help="Bundle directory (champion).")] = None,
    duration: Annotated[int, typer.Option(help="Seconds per wrk run.")] = 10,
    rounds: Annotated[int, typer.Option(help="Alternated runs per mode and concurrency.")] = 2,
    connections: Annotated[str, typer.Option(help="Comma-separated wrk connections.")] = "1,8",
) -> None:
    from tests.utils.serve_app import (  # noqa: PLC0415
        PASSWORD,
        ServeProcess,
        migrate_and_add_users,
        serve_settings,
        settings_env,
    )
    from tests.utils.serve_fixtures import copy_bundle_as  # noqa: PLC0415
    from tests.utils.wrk import run_wrk  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    servers: dict[str, ServeProcess] = {}
    try:
        champion = _model(model, work)
        challenger = copy_bundle_as(champion, work / "challenger", "bench-challenger")
        for share in ("0", "1"):
            folder = work / f"share-{share}"
            folder.mkdir()
            settings = serve_settings(
                folder,
                model_path=str(champion),
                rate_limit_enabled=False,
                batch_max_size=32,
            )
            migrate_and_add_users(settings, {"bench": ["predict"]})
            env = settings_env(
                settings,
                RAKUTEN_RATE_LIMIT_ENABLED="false",
                RAKUTEN_CHALLENGER_MODEL_PATH=str(challenger),
                RAKUTEN_SHADOW_SHARE=share,
            )
            servers[share] = ServeProcess(env, workers=1, log_path=folder / "server.out")
        for server in servers.values():
            server.wait_ready(timeout_s=900)
        tokens = {
            share: httpx.post(
                f"{server.base_url}/token",
                data={"username": "bench", "password": PASSWORD},
                timeout=30,
            ).json()["access_token"]
            for share, server in servers.items()
        }
        typer.echo(
            "share | conn | round | req/s | p50 ms | p99 ms | non-200 | scored | dropped | load1"
        )
        totals: dict[tuple[str, int], list[float]] = {}
        for conns in (int(c) for c in connections.split(",")):
            for round_ in range(1, rounds + 1):
                for share, server in servers.items():
                    before = _shadow_counts(server.base_url)
                    runs = work / f"wrk-{share}-{conns}-{round_}"
                    runs.mkdir()
                    result = run_wrk(
                        server.base_url,
                        tokens[share],
                        connections=conns,
                        duration_s=duration,
                        workdir=runs,
                    )
                    after = _shadow_counts(server.base_url)
                    load1 = os.getloadavg()[0]
                    rate = result.requests / max(result.duration_s, 1e-9)
                    non_ok = result.requests - result.ok
                    typer.echo(
                        f"{share} | {conns} | {round_} | {rate:.1f} | {result.p50_ms:.1f} | "
                        f"{result.p99_ms:.1f} | {non_ok} | {after[0] - before[0]:.0f} | "
                        f"{after[1] - before[1]:.0f} | {load1:.1f}"
                    )
                    totals.setdefault((share, conns), []).extend([rate, result.p50_ms])
        for conns in (int(c) for c in connections.split(",")):
            off, on = totals[("0", conns)], totals[("1", conns)]
            rate_off, rate_on = sum(off[0::2]) / rounds, sum(on[0::2]) / rounds
            p50_off, p50_on = sum(off[1::2]) / rounds, sum(on[1::2]) / rounds
            typer.echo(
                f"{conns} connections: req/s share 1 / share 0 = {rate_on:.1f} / {rate_off:.1f} "
                f"= {rate_on / rate_off:.3f}; mean p50 {p50_on:.1f} vs {p50_off:.1f} ms"
            )
    finally:
        for server in servers.values():
            server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
