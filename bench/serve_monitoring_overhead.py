"""What monitoring costs the API: ``/predict`` throughput with metrics on and off, side by side.

Two real ``rakuten-serve run --workers N`` servers start together on 127.0.0.1 from the same
bundle: one with metrics on (prometheus-client multiprocess mode, every request counted and
timed, ``/metrics`` scraped every ``--scrape-interval`` seconds the way Prometheus does, but
more often), one with ``RAKUTEN_METRICS_ENABLED=false`` (the no-op telemetry). Rate limiting is
off on both. ``wrk`` (a native load generator, so the client leaves the CPU to the servers)
posts a real multipart request (a real Rakuten JPEG with a real designation and description,
built into the body by a Lua script) for ``--duration`` seconds, alternating on/off for
``--rounds`` rounds so drift in the machine's load hits both. Prints requests/s, latency,
errors and the client's CPU per run, then the ratio on/off (target >= 0.95). Asserts nothing.

    uv run --frozen python bench/serve_monitoring_overhead.py
    uv run --frozen python bench/serve_monitoring_overhead.py --model models/current --workers 2

Without ``--model`` it uses ``models/current`` when present, else the small real bundle of the
serving tests (``tests/utils/serve_bundle.py``): a cheap model makes the metrics' share of each
request larger, so the ratio it gives is a conservative one.
"""

from __future__ import annotations

import csv
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
sys.path.insert(0, str(ROOT))  # tests.utils helpers (bundle, users, free port)

app = typer.Typer(add_completion=False)

LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def multipart_body(boundary: str) -> bytes:
    """A real product: the first training row's texts and a real Rakuten JPEG."""
    with (SHARED / "raw_sample" / "X_train.csv").open(encoding="utf-8", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["description"])
    image = sorted((SHARED / "images" / "train").glob("*.jpg"))[0].read_bytes()
    parts = []
    for name in ("designation", "description"):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + row[name].encode()
            + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class Server:
    """``rakuten-serve run`` with its own environment and free port."""

    def __init__(self, name: str, env: dict[str, str], workers: int, work: Path) -> None:
        from tests.utils.postgres import free_port  # noqa: PLC0415

        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rakuten_serve", "run", "--no-migrate"]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, workers: int, timeout: float = 600) -> None:
        """Ready, with every worker up (each answers /health/ready once it has its model)."""
        import httpx  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log.name}")
            alive = [p for p in children(self.process.pid) if _rss_mb(p) > 100]
            try:
                ok = httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok and len(alive) >= workers:
                time.sleep(5)  # let the last worker finish its warm-up
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready")

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.process.pid, *children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


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


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


def run_wrk(
    server: Server, script: Path, *, duration: int, connections: int, scrape: float | None
) -> dict[str, float]:
    scraper = Scraper(server.url, scrape) if scrape else None
    if scraper:
        scraper.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = server.cpu_seconds()
    out = subprocess.run(
        [shutil.which("wrk") or "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
        + ["--timeout", "30s"]
        + ["-s", str(script), f"{server.url}/predict"],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 120,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_seconds() - cpu
    if scraper:
        scraper.stop.set()
        scraper.join()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "requests": total,
        "errors": int(errors.group(1)) if errors else 0,
        "client_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "server_cpu_ms": server_cpu / max(total, 1) * 1000,
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
    from tests.utils.serve_app import (  # noqa: PLC0415
        PASSWORD,
        migrate_and_add_users,
        serve_settings,
        settings_env,
    )

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
        "metrics on": Server("on", base | {"RAKUTEN_METRICS_ENABLED": "true"}, workers, work),
        "metrics off": Server("off", base | {"RAKUTEN_METRICS_ENABLED": "false"}, workers, work),
    }
    try:
        import httpx  # noqa: PLC0415

        scripts = {}
        warm_up = {}
        for name, server in servers.items():
            server.wait_ready(workers)
            token = httpx.post(
                f"{server.url}/token", data={"username": "bench", "password": PASSWORD}
            ).json()["access_token"]
            boundary = uuid.uuid4().hex
            body = work / f"{server.name}.body"
            body.write_bytes(multipart_body(boundary))
            script = work / f"{server.name}.lua"
            script.write_text(LUA.format(body=body, boundary=boundary, token=token))
            scripts[name] = script
            warm_up[name] = run_wrk(
                server, script, duration=5, connections=connections, scrape=None
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
                r = run_wrk(
                    server, scripts[name], duration=duration, connections=connections, scrape=scrape
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
            httpx.get(f"{servers['metrics on'].url}/metrics").text,
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
