"""``/predict`` throughput and latency: micro-batched server vs unbatched server vs in-process.

For each server mode (micro-batching on, then off) a real ``rakuten-serve run`` (uvicorn, one
worker) starts on 127.0.0.1 with a fresh SQLite database, a user and a raised rate limit; a
client in *another process* (httpx async) sends real multipart requests (real 500x500 Rakuten
JPEGs from ``../shared/data/rakuten/images/train`` + real designations/descriptions) at
concurrency 1, 8 and 32, and reports requests/s and p50/p95/p99 latency. The in-process limit
runs the same preprocessing (``prepare_input``: text cleaning + JPEG decoding) and batched
model calls (batch = the server's max batch size) with no HTTP. Also reported: cold start (process
start -> first 200 on ``/health/ready``) and resident memory per worker.

Prints tables; asserts nothing.

    uv run --frozen python bench/serve_predict.py    # builds a production-shaped bundle
    uv run --frozen python bench/serve_predict.py --model models/current
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
sys.path.insert(0, str(ROOT))  # tests.utils helpers (bundle building, free port)

USER, PASSWORD = "bench", "bench-password-1234"
# The production architecture (rakuten_train defaults), trained one epoch on the small sample:
# the weights are not good, but the cost of a model call is the real one.
PRODUCTION_SHAPED = {
    "epochs": 1,
    "image_size": 64,
    "early_stopping_patience": 0,
    "text.max_tokens": 20000,
    "text.sequence_length": 64,
    "text.embedding_dim": 64,
    "text.lstm_units": 64,
    "text.word_max_tokens": 40000,
    "text.char_max_tokens": 40000,
    "text.char_ngram_min": 2,
    "text.char_ngram_max": 5,
    "text.char_max_chars": 1000,
    "text.wide_units": 256,
    "image.filters": [16, 32, 64],
    "image.units": 64,
}


def load_requests(limit: int = 200) -> list[tuple[str, str, bytes]]:
    """(designation, description, jpeg bytes) from real rows and real images."""
    with (SHARED / "raw_sample" / "X_train.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(r["designation"], r["description"]) for r in csv.DictReader(handle)]
    images = [p.read_bytes() for p in sorted((SHARED / "images" / "train").glob("*.jpg"))]
    return [
        (rows[i % len(rows)][0], rows[i % len(rows)][1], images[i % len(images)])
        for i in range(limit)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------- client (separate process)
async def _client(
    url: str, token: str, concurrency: int, total: int, warmup: int
) -> dict[str, float]:
    import httpx  # noqa: PLC0415

    payloads = load_requests()
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors: dict[int, int] = {}
    counter = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker(record: bool, quota: int) -> None:
            nonlocal counter
            while counter < quota:
                i = counter
                counter += 1
                designation, description, image = payloads[i % len(payloads)]
                started = time.perf_counter()
                response = await client.post(
                    "/predict",
                    headers=headers,
                    data={"designation": designation, "description": description},
                    files={"image": ("p.jpg", image, "image/jpeg")},
                )
                if record:
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[response.status_code] = errors.get(response.status_code, 0) + 1

        await asyncio.gather(*(worker(False, warmup) for _ in range(concurrency)))
        counter = 0
        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(True, total) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return {
        "client_cpu_ms": cpu / max(1, len(latencies)) * 1000,
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50) * 1000,
        "p95": percentile(latencies, 95) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "errors": sum(errors.values()),
    }


def client_main(args: argparse.Namespace) -> None:
    result = asyncio.run(
        _client(args.url, args.token, args.concurrency, args.requests, args.warmup)
    )
    print(json.dumps(result))


# ---------------------------------------------------------------- server handling
def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class Server:
    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rakuten_serve",
                "run",
                "--no-migrate",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 300) -> float:
        import httpx  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited; see its log")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server not ready")

    def worker_pids(self) -> list[int]:
        # uvicorn with one worker serves in the main process; with N it spawns N children
        # (plus a multiprocessing resource tracker, which is small and skipped here).
        workers = [p for p in children(self.process.pid) if rss_mb(p)[0] > 100]
        return workers or [self.process.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its workers so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.process.pid, *children(self.process.pid)]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def base_env(work: Path, model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")}
    env.update(
        RAKUTEN_ENVIRONMENT="test",
        RAKUTEN_JWT_SECRET="bench-only-secret-0123456789abcdef0123456789",
        RAKUTEN_DATABASE_URL=f"sqlite:///{work / 'serve.db'}",
        RAKUTEN_RECORD_SPOOL_DIR=str(work / "spool"),
        RAKUTEN_LOG_DIR=str(work / "logs"),
        RAKUTEN_LOG_LEVEL="WARNING",
        RAKUTEN_MODEL_PATH=str(model),
        RAKUTEN_PREDICT_RATE_LIMIT="1000000/minute",
        RAKUTEN_TOKEN_RATE_LIMIT="1000/minute",
        RAKUTEN_BATCH_MAX_SIZE="32",
        RAKUTEN_BATCH_MAX_WAIT_MS="5",
        RAKUTEN_BATCH_QUEUE_SIZE="1024",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def run_client(server: Server, token: str, concurrency: int, requests: int) -> dict[str, float]:
    url = server.url
    warmup = max(2 * concurrency, 10)
    cpu = server.cpu_seconds()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "client",
            "--url",
            url,
            "--token",
            token,
            "--concurrency",
            str(concurrency),
            "--requests",
            str(requests),
            "--warmup",
            str(max(2 * concurrency, 10)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["server_cpu_ms"] = (server.cpu_seconds() - cpu) / (requests + warmup) * 1000
    return result


def in_process(model: Path, requests: int, batch: int) -> dict[str, float]:
    """The same preprocessing and batched model calls, no HTTP (one process)."""
    from rakuten_serve.predictor import Predictor, load_model, prepare_input  # noqa: PLC0415
    from rakuten_serve.settings import ServeSettings  # noqa: PLC0415

    limits = ServeSettings(_env_file=None).image_limits  # type: ignore[call-arg]
    predictor = Predictor(
        load_model(str(model), cache_dir=Path(tempfile.gettempdir()), warm_up_batch=batch)
    )
    size = predictor.model.image_size
    payloads = load_requests()

    def run(n: int) -> float:
        started = time.perf_counter()
        for start in range(0, n, batch):
            items = [
                prepare_input(d, t, img, image_size=size, limits=limits)
                for d, t, img in (
                    payloads[i % len(payloads)] for i in range(start, min(n, start + batch))
                )
            ]
            predictor.predict_batch(items)
        return time.perf_counter() - started

    run(batch * 2)  # warm-up
    cpu = time.process_time()
    elapsed = run(requests)
    cpu = time.process_time() - cpu
    one = [prepare_input(*payloads[i], image_size=size, limits=limits) for i in range(batch)]
    started = time.perf_counter()
    for _ in range(10):
        predictor.predict_batch(one)
    model_only = (time.perf_counter() - started) / 10
    started = time.perf_counter()
    for item in one:
        predictor.predict_batch([item])
    single = (time.perf_counter() - started) / batch
    return {
        "rps": requests / elapsed,
        "cpu_ms": cpu / requests * 1000,
        "model_ms_batch": model_only * 1000,
        "model_ms_single": single * 1000,
    }


def ensure_model(arg: str | None, work: Path) -> Path:
    if arg:
        return Path(arg)
    default = ROOT / "models" / "current"
    if (default / "bundle.json").is_file():
        return default
    from tests.utils.bundles import build_small_bundle  # noqa: PLC0415

    print("building a production-shaped bundle (1 epoch on the generated sample)...", flush=True)
    return build_small_bundle(work / "bundle-build", overrides=PRODUCTION_SHAPED)


def main(args: argparse.Namespace) -> None:
    import httpx  # noqa: PLC0415

    from tests.utils.postgres import free_port  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="rakuten-bench-serve-"))
    model = ensure_model(args.model, work)
    print(f"model: {model}")
    levels = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, dict[int, dict[str, float]]] = {}
    starts: list[tuple[str, int, float, list[tuple[float, float]]]] = []
    for mode in ("batched", "unbatched"):
        env = base_env(work / mode, model) | {
            "RAKUTEN_BATCH_ENABLED": str(mode == "batched").lower()
        }
        (work / mode).mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "rakuten_serve"]
        subprocess.run([*cli, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        subprocess.run(
            [*cli, "users", "create", USER, "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        server = Server(env, free_port(), 1, work / mode / "server.out")
        try:
            cold = server.wait_ready()
            token = httpx.post(
                f"{server.url}/token", data={"username": USER, "password": PASSWORD}
            ).json()["access_token"]
            results[mode] = {}
            for c in levels:
                n = args.requests * max(1, c // 8) if c > 1 else args.requests // 2
                results[mode][c] = run_client(server, token, c, n)
                print(f"  {mode:9s} c={c:<3d} {results[mode][c]['rps']:7.1f} req/s", flush=True)
            starts.append((mode, 1, cold, [rss_mb(p) for p in server.worker_pids()]))
        finally:
            server.close()
    if args.workers > 1:
        env = base_env(work / "batched", model) | {"RAKUTEN_BATCH_ENABLED": "true"}
        server = Server(env, free_port(), args.workers, work / "multi.out")
        try:
            cold = server.wait_ready()
            time.sleep(3)  # both workers finish their warm-up
            starts.append(
                ("batched", args.workers, cold, [rss_mb(p) for p in server.worker_pids()])
            )
        finally:
            server.close()
    local = in_process(model, args.requests * 2, 32)

    print(
        "\n/predict, multipart JPEG (500x500) + text, one uvicorn worker, client in another process"
    )
    head = ["mode", "conc.", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
    head += ["server CPU ms/req", "client CPU ms/req"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for mode in ("batched", "unbatched"):
        for c in levels:
            r = results[mode][c]
            cells = [f"{mode} server", str(c), f"{r['rps']:.1f}", f"{r['p50']:.1f}"]
            cells += [f"{r['p95']:.1f}", f"{r['p99']:.1f}", str(int(r["errors"]))]
            cells += [f"{r['server_cpu_ms']:.1f}", f"{r['client_cpu_ms']:.1f}"]
            print("| " + " | ".join(cells) + " |")
    cells = [
        "in-process limit",
        "-",
        f"{local['rps']:.1f}",
        "",
        "",
        "",
        "",
        f"{local['cpu_ms']:.1f}",
    ]
    print("| " + " | ".join([*cells, ""]) + " |")
    print("in-process: the same prepare_input + predict_batch, batches of 32, no HTTP")
    top = max(levels)
    b, u = results["batched"][top]["rps"], results["unbatched"][top]["rps"]
    share = b / local["rps"]
    print(f"\nat concurrency {top}: batched = {share:.0%} of in-process, {b / u:.2f}x unbatched")
    print(
        f"model call: {local['model_ms_single']:.1f} ms for 1 product, "
        f"{local['model_ms_batch']:.1f} ms for 32"
    )
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} cores (shared machine)")
    print("\ncold start (process start -> /health/ready 200) and resident memory per worker")
    for mode, workers, cold, mems in starts:
        mem = ", ".join(f"{rss:.0f} MiB (peak {hwm:.0f})" for rss, hwm in mems)
        print(f"  {mode:<10} workers={workers}: {cold:5.1f} s; RSS {mem}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    client.add_argument("--token", required=True)
    client.add_argument("--concurrency", type=int, required=True)
    client.add_argument("--requests", type=int, required=True)
    client.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--model", help="bundle directory (default: models/current, else build one)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per level (x c/8 above 8)"
    )
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument(
        "--workers", type=int, default=2, help="also measure cold start/RSS with N workers"
    )
    parsed = parser.parse_args()
    if parsed.command == "client":
        client_main(parsed)
    else:
        main(parsed)
