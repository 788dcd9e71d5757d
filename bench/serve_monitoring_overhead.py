"""What monitoring costs the API: ``/predict`` throughput with metrics on and off, side by side.

Two real ``rakuten-serve run --workers N`` servers start together on 127.0.0.1 from the same
bundle: one with metrics on (prometheus-client multiprocess mode, every request counted and
timed, ``/metrics`` scraped every ``--scrape-interval`` seconds the way Prometheus does, but
more often), one with ``RAKUTEN_METRICS_ENABLED=false`` (the no-op telemetry). Rate limiting is
off on both. ``wrk`` (a native load generator, so the client leaves the CPU to the servers)
posts real multipart requests (real Rakuten JPEGs with their rows' designation and description,
cycled by the Lua script of ``tests/utils/wrk.py``, shared with the tests and
``bench/serve_predict.py``) for ``--duration`` seconds, alternating on/off for
``--rounds`` rounds so drift in the machine's load hits both. Prints requests/s, latency,
errors and the client's CPU per run, then the ratio on/off (target >= 0.95). Asserts nothing.

    uv run --frozen python bench/serve_monitoring_overhead.py
    uv run --frozen python bench/serve_monitoring_overhead.py --model models/current --workers 2

Without ``--model`` it uses ``models/current`` when present, else the small real bundle of the
serving tests (``tests/utils/serve_bundle.py``): a cheap model makes the metrics' share of each
request larger, so the ratio it gives is a conservative one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils helpers (server process, wrk, products, users)

app = typer.Typer(add_completion=False)


class Scraper(threading.Thread):
    """Scrapes ``/metrics`` every ``interval`` seconds while a run lasts, like Prometheus."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.stop = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        import httpx  # noqa: PLC0415

        while not self.stop.wait(self.interval):
            if httpx.get(f"{self.url}/metrics", timeout=10).status_code == 200:
                self.scrapes += 1


def run_load(
    server: Any,
    script: tuple[Path, Path],
    work: Path,
    *,
    duration: int,
    connections: int,
    scrape: float | None,
) -> dict[str, float]:
    """One wrk run (shared helper), with a scraper alongside when ``scrape`` is set."""
    from tests.utils.wrk import run_wrk  # noqa: PLC0415

    scraper = Scraper(server.base_url, scrape) if scrape else None
    if scraper:
        scraper.start()
    cpu = server.cpu_seconds()
    try:
        result = run_wrk(
            server.base_url,
            "",
            connections=connections,
            duration_s=duration,
            workdir=work,
            script=script,
        )
    finally:
        if scraper:
            scraper.stop.set()
            scraper.join()
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "errors": result.non_2xx + result.transport_errors,
        "client_cpu_s": result.client_cpu_s,
        "server_cpu_ms": (server.cpu_seconds() - cpu) / max(result.requests, 1) * 1000,
        "scrapes": scraper.scrapes if scraper else 0,
    }


def _model(model: Path | None, work: Path) -> Path:
    if model is not None:
        return model
    if (ROOT / "models" / "current" / "bundle.json").is_file():
        return ROOT / "models" / "current"
    from tests.utils.serve_bundle import make_serve_bundle  # noqa: PLC0415

    print("building the small serving bundle...", flush=True)
    target = work / "bundle"
    make_serve_bundle(target)
    return target


@app.command()
def main(
    model: Annotated[Path | None, typer.Option(help="Bundle directory.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn workers per server.")] = 2,
    duration: Annotated[int, typer.Option(min=5, help="Seconds per wrk run.")] = 20,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 8,
    rounds: Annotated[int, typer.Option(min=1, help="on/off pairs, alternated.")] = 2,
    scrape_interval: Annotated[float, typer.Option(help="Seconds between scrapes.")] = 1.0,
) -> None:
    """Run the comparison and print the table and the ratio."""
    from tests.utils.products import real_products  # noqa: PLC0415
    from tests.utils.serve_app import (  # noqa: PLC0415
        PASSWORD,
        ServeProcess,
        get_token,
        migrate_and_add_users,
        serve_settings,
        settings_env,
    )
    from tests.utils.wrk import write_script  # noqa: PLC0415

    if shutil.which("wrk") is None:
        raise typer.BadParameter("wrk is missing: run `make system-deps`")
    work = Path(tempfile.mkdtemp(prefix="rakuten-bench-monitoring-"))
    bundle = _model(model, work)
    settings = serve_settings(work, model_path=str(bundle), rate_limit_enabled=False)
    migrate_and_add_users(settings, {"bench": ["predict"]})
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")}
    base |= settings_env(settings) | {
        "RAKUTEN_RATE_LIMIT_ENABLED": "false",
        "RAKUTEN_LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    servers = {
        name: ServeProcess(
            base | {"RAKUTEN_METRICS_ENABLED": str(name == "metrics on").lower()},
            workers=workers,
            log_path=work / f"{name.replace(' ', '-')}.log",
            args=["--no-migrate"],
        )
        for name in ("metrics on", "metrics off")
    }
    try:
        import httpx  # noqa: PLC0415

        scripts = {}
        warm_up = {}
        products = real_products(64)[0]  # real rows and JPEGs, cycled by the Lua script
        for name, server in servers.items():
            server.wait_workers(timeout_s=600)
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                token = get_token(client, "bench", PASSWORD)
            scripts[name] = write_script(token, work, products)
            warm_up[name] = run_load(
                server, scripts[name], work, duration=5, connections=connections, scrape=None
            )
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        print(
            f"workers={workers} connections={connections} duration={duration}s "
            f"scrape every {scrape_interval}s (metrics on) model={bundle}"
        )
        header = "| run | mode | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/req | "
        print(header + "client CPU s | scrapes |\n|---|---|---|---|---|---|---|---|---|")
        for i in range(rounds):
            for name, server in servers.items():
                scrape = scrape_interval if name == "metrics on" else None
                r = run_load(
                    server,
                    scripts[name],
                    work,
                    duration=duration,
                    connections=connections,
                    scrape=scrape,
                )
                results[name].append(r)
                print(
                    f"| {i + 1} | {name} | {r['rps']:.1f} | {r['p50_ms']:.1f} | "
                    f"{r['p99_ms']:.1f} | {r['errors']:.0f} | {r['server_cpu_ms']:.1f} | "
                    f"{r['client_cpu_s']:.2f} | {r['scrapes']:.0f} |",
                    flush=True,
                )
        on = sum(r["rps"] for r in results["metrics on"]) / rounds
        off = sum(r["rps"] for r in results["metrics off"]) / rounds
        from tests.utils.prom_text import sample_value  # noqa: PLC0415

        counted = sample_value(
            httpx.get(f"{servers['metrics on'].base_url}/metrics").text,
            "rakuten_http_requests_total",
            route="/predict",
            status="200",
        )
        runs = [warm_up["metrics on"], *results["metrics on"]]
        sent = sum(r["requests"] - r["errors"] for r in runs)
        cpu_on = sum(r["server_cpu_ms"] for r in results["metrics on"]) / rounds
        cpu_off = sum(r["server_cpu_ms"] for r in results["metrics off"]) / rounds
        print(f"\nthroughput with monitoring / without: {on:.1f} / {off:.1f} = {on / off:.3f}")
        print(
            f"server CPU per request without / with: {cpu_off:.2f} / {cpu_on:.2f} ms = "
            f"{cpu_off / cpu_on:.3f} (the CPU-bound throughput ratio, steadier on a shared host)"
        )
        print(
            f"(target >= 0.95) the metrics-on server counted {counted} /predict 200s, "
            f"wrk received {sent} (it stops counting the requests in flight when a run ends)"
        )
    finally:
        for server in servers.values():
            server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
