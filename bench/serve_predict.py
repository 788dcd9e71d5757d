"""``/predict`` on our server against BentoML serving the same bundle, and the in-process limit.

What runs (all on 127.0.0.1, one after the other, so nothing measured shares the CPU):

- **ours**: ``rakuten-serve run`` as in production: bearer-token authentication (a user looked
  up in the database, cached), the per-user rate limit on (raised by its setting,
  ``RAKUTEN_PREDICT_RATE_LIMIT``, above anything the run sends), every prediction recorded
  (journal + SQLite), metrics on, access log off; micro-batching on (``batched``) and off
  (``unbatched``), default batch settings;
- **BentoML**: ``bench/bentoml/service.py`` in its own environment (``.venv-bentoml``, made by
  ``bench/bentoml/setup.sh``): the same multipart body, our ``prepare_input`` and our model call
  on the same bundle (ONNX Runtime), behind BentoML's adaptive batching (a batchable API,
  ``max_batch_size`` = ours), in its best configuration (workers = cores, the connection to its
  model service never recycled, access log off); no authentication, rate limit or recording;
- **the in-process limit**: the same work without HTTP: one process per server worker, each
  looping ``prepare_input`` + ``predict_batch`` on its share of the concurrency (batches of
  min(concurrency / loops, max batch)), on as many cores as the servers use.

Each server runs with workers = cores (``os.sched_getaffinity``). The load comes from ``wrk``
(native, so the client leaves the CPU to the server; its own CPU is reported) cycling through
multipart bodies built from real rows and real 500x500 JPEGs (``../shared/data/rakuten``, else
the offline sample). At each concurrency, rounds alternate ours (batched), BentoML, ours
(unbatched), then the in-process limit, so the machine's load drifts over all alike. Cold start
is process start -> first 200 on a real ``/predict``, one worker each, before anything else runs.
Printed: every round (and with several rounds their summary) per server and concurrency:
req/s, p50/p95/p99, errors, server CPU/request (the process tree's CPU from the kernel), wrk's
CPU/request, the CPU anything else used meanwhile (the idle servers, other processes: the
machine's busy time minus the server's and wrk's), the load average; then the issue #24
targets, as ratios from this one run:

- ours req/s / BentoML req/s at concurrency 32 (target >= 2.5), and their CPU per request
  (the same ratio once both are CPU-bound, steadier on a machine shared with other work);
- ours p99 / BentoML p99 at concurrency 8 (target <= 0.25);
- ours batched / unbatched req/s at every concurrency (target >= 1.0 at each), and by CPU;
- the server's own cost: CPU ms per request served minus CPU ms per request in process, same
  inputs, same number of processes; ours / BentoML's (proposed target <= 0.5: the ratio a
  cheaper model cannot move, docs/performance.md); and served / in-process req/s (a
  diagnostic, aim 0.80);
- ours p99 / p50 at concurrency 32 (target <= 2.5);
- cold start, ours / BentoML (target <= 0.25).

A warning says when other processes took a noticeable share of the CPU during the rounds: the
servers, the limit and the rest of the machine then compete, and req/s follows who wins (the
server with more runnable threads gets more), while CPU per request stays meaningful. Asserts
nothing.

    bash bench/bentoml/setup.sh                                 # once: .venv-bentoml
    uv run --frozen python bench/serve_predict.py --quick       # ~3 min on 2 cores
    uv run --frozen python bench/serve_predict.py               # full run, ~18 min on 2 cores
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

import psutil
import sqlalchemy
import typer

from rakuten_core.bundle import INTRA_OP_THREADS_ENV
from rakuten_serve.predictor import Predictor, load_model, prepare_input
from rakuten_serve.settings import ServeSettings
from rakuten_serve.tokens import create_access_token

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils: shared with the tests (servers, wrk, products)

from tests.utils.bentoml_server import SETUP_SCRIPT, BentoProcess, bentoml_version  # noqa: E402
from tests.utils.proc_stats import rss_mib  # noqa: E402
from tests.utils.products import Product, multipart_body, real_products  # noqa: E402
from tests.utils.serve_app import (  # noqa: E402
    ServeProcess,
    migrate_and_add_users,
    serve_settings,
    settings_env,
)
from tests.utils.wrk import WrkResult, run_wrk, write_script  # noqa: E402

app = typer.Typer(add_completion=False, rich_markup_mode=None)
HELP = """Measure /predict: our server vs BentoML on the same bundle vs the in-process limit.

Cold starts (1 worker each), then our batched and unbatched servers and the BentoML peer at
workers = cores, loaded by wrk (real rows + 500x500 JPEGs, multipart, bearer token) at each
concurrency in alternating rounds, beside the in-process limit; prints every round, a summary
and the issue #24 targets as ratios. Needs wrk and .venv-bentoml (bash bench/bentoml/setup.sh,
run for you when missing). Asserts nothing.

\b
  uv run --frozen python bench/serve_predict.py --quick   # ~3 min on 2 cores
  uv run --frozen python bench/serve_predict.py           # full, ~18 min on 2 cores
"""

OURS, PEER, UNBATCHED, BASELINE = "ours", "BentoML", "ours unbatched", "ours baseline"
RATE_LIMIT = "1000000/minute"  # per user: on, but beyond what a run sends
FULL_LEVELS, QUICK_LEVELS = "1,2,4,8,16,32,48,64", "1,8,32,64"


def ensure_wrk(install: bool) -> None:
    """wrk from Debian (``apt-get install wrk``) when missing, or a clear exit."""
    if shutil.which("wrk"):
        return
    if install and shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk missing: apt-get install -y wrk", flush=True)
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
            subprocess.run(command, check=False, capture_output=True, timeout=600)
    if not shutil.which("wrk"):
        print("error: this benchmark needs wrk: `sudo apt-get install wrk`", file=sys.stderr)
        raise typer.Exit(1)


def ensure_bentoml(venv: Path) -> None:
    """``.venv-bentoml`` from ``bench/bentoml/setup.sh`` when missing (about a minute)."""
    if not (venv / "bin" / "bentoml").is_file():
        print(f"{venv} missing: bash {SETUP_SCRIPT.relative_to(ROOT)}", flush=True)
        env = os.environ | {"BENTOML_VENV": str(venv)}
        subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, cwd=ROOT, env=env)


def _model(model: Path | None) -> Path:
    """``--model``, else ``models/current`` (``make run``), else a bundle built once and cached."""
    if model is not None:
        return model
    if (ROOT / "models" / "current" / "bundle.json").is_file():
        return ROOT / "models" / "current"
    cached = ROOT / "data" / "bench" / "serve-bundle"  # data/ is git-ignored
    if (cached / "bundle" / "serving").is_dir():
        return cached / "bundle"
    from tests.utils.bundles import build_small_bundle  # noqa: PLC0415
    from tests.utils.paths import SHARED_DATA  # noqa: PLC0415

    texts = SHARED_DATA / "text_fr" / "products.csv"
    real = texts if texts.is_file() else None
    print(
        f"no models/current: building a production-shaped bundle in {cached} (1 epoch on the "
        "generated sample" + (", real French texts: vocabularies at their caps)" if real else ")"),
        flush=True,
    )
    shutil.rmtree(cached, ignore_errors=True)
    return build_small_bundle(
        cached, train_rows=3000, overrides=production_shaped(), real_texts=real
    )


def production_shaped() -> dict[str, Any]:
    """``params.yaml``'s training parameters as dotted overrides, one epoch, no early stopping.

    The production architecture at its real sizes, trained one epoch on the small sample whose
    training rows carry real French texts: the weights are not good, but the vocabularies (and
    so the wide layer) are as wide as on the full data, so a model call costs the real price.
    """
    from rakuten_train.params import load_params  # noqa: PLC0415

    once = {"epochs": 1, "early_stopping_patience": 0}
    params = load_params(ROOT / "params.yaml", once).model_dump(mode="json")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):  # a section: text, image, registry
            flat |= {f"{key}.{leaf}": v for leaf, v in value.items()}
        else:
            flat[key] = value
    return flat


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, every process, the kernel)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)  # guest: in user


def _cpu_of(servers: dict[str, Any], but: str = "") -> float:
    """CPU seconds so far of every server but ``but``."""
    return sum(float(server.cpu_seconds()) for name, server in servers.items() if name != but)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _model_threads(workers: int, cores: int) -> dict[str, str]:
    """ONNX Runtime's intra-op threads for one of ``workers`` processes, as ours sizes them
    (``rakuten_serve.asgi.size_model_threads``): cores // workers, its default with one."""

    return {INTRA_OP_THREADS_ENV: str(max(1, cores // workers))} if workers > 1 else {}


# --- the in-process limit: one process per server worker, no HTTP


def _limit_loop(conn: Connection, bundle: str, products: list[Product], max_batch: int) -> None:
    """A limit process: load the model as the server does, then run the loops it is sent."""
    limits = ServeSettings(_env_file=None).image_limits
    loaded = load_model(bundle, cache_dir=Path(tempfile.gettempdir()), warm_up_batch=max_batch)
    predictor, size = Predictor(loaded), loaded.image_size
    gc.freeze()  # as the server does once its model is loaded (rakuten_serve.heap)
    conn.send("ready")
    i = 0
    while (order := conn.recv()) is not None:
        batch, duration_s = order
        done, times = 0, []
        cpu, started = time.process_time(), time.perf_counter()
        while time.perf_counter() - started < duration_s:
            t0 = time.perf_counter()
            items = []
            for k in range(i, i + batch):
                p = products[k % len(products)]
                items.append(
                    prepare_input(
                        p.designation, p.description, p.image, image_size=size, limits=limits
                    )
                )
            predictor.predict_batch(items)
            times.append((time.perf_counter() - t0) * 1000)
            i, done = i + batch, done + batch
        conn.send((done, time.process_time() - cpu, time.perf_counter() - started, times))


class InProcessLimit:
    """``workers`` processes running the server's work (prepare + batched model call) in loops."""

    def __init__(
        self, bundle: Path, products: list[Product], *, max_batch: int, workers: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.max_batch, self.pipes, self.procs = max_batch, [], []
        threads = _model_threads(workers, len(os.sched_getaffinity(0)))
        saved = {k: os.environ.get(k) for k in threads}
        os.environ.update(threads)  # inherited by the spawned processes
        try:
            for _ in range(workers):
                ours, theirs = context.Pipe()
                args = (theirs, str(bundle), products, max_batch)
                proc = context.Process(target=_limit_loop, args=args, daemon=True)
                proc.start()
                self.pipes.append(ours)
                self.procs.append(proc)
            for pipe in self.pipes:
                pipe.recv()  # "ready"
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def measure(self, concurrency: int, duration_s: float) -> dict[str, Any]:
        """min(concurrency, workers) loops at once, each on its share of the concurrency."""
        loops = self.pipes[: min(concurrency, len(self.pipes))]
        batch = min(math.ceil(concurrency / len(loops)), self.max_batch)
        busy = busy_cpu_seconds()
        for pipe in loops:
            pipe.send((batch, duration_s))
        answers = [pipe.recv() for pipe in loops]
        busy, cpu = busy_cpu_seconds() - busy, sum(a[1] for a in answers)
        elapsed = max(a[2] for a in answers)
        done = sum(a[0] for a in answers)
        times = sorted(t for a in answers for t in a[3])

        def pick(q: float) -> float:
            return float(times[min(len(times) - 1, int(q * len(times)))])

        return {
            "rps": done / elapsed,
            "p50": pick(0.50),
            "p95": pick(0.95),
            "p99": pick(0.99),
            "errors": f"batch {batch} x {len(loops)}",
            "cpu_ms": cpu / done * 1000,
            "client": "-",
            "other": f"{(busy - cpu) / elapsed:.2f}",
            "seconds": elapsed,
        }

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


# --- measurements and the table


@dataclass
class Rounds:
    """The wrk rounds of one server at one concurrency, summed up."""

    runs: list[dict[str, float]] = field(default_factory=list)

    def add(
        self, w: WrkResult, server_cpu_s: float, busy_cpu_s: float, idle_cpu_s: float
    ) -> dict[str, Any]:
        """One round: wrk's result and, during it, the CPU of the server, of the whole machine
        (busy), and of the idle servers (waiting for their turn)."""
        run = {
            "requests": w.requests,
            "seconds": w.duration_s,
            "p50": w.p50_ms,
            "p95": w.p95_ms,
            "p99": w.p99_ms,
            "non_2xx": w.non_2xx,
            "socket": w.transport_errors,
            "server_cpu": server_cpu_s,
            "client_cpu": w.client_cpu_s,
            "other_cpu": busy_cpu_s - server_cpu_s - w.client_cpu_s,
            "idle_cpu": idle_cpu_s,
        }
        self.runs.append(run)
        return self._summary([run])

    def summary(self) -> dict[str, Any]:
        return self._summary(self.runs)

    @staticmethod
    def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
        def total(key: str) -> float:
            return sum(r[key] for r in runs)

        def mean(key: str) -> float:
            return total(key) / len(runs)

        n, seconds = max(total("requests"), 1), max(total("seconds"), 1e-9)
        return {
            "rps": total("requests") / seconds,
            "p50": mean("p50"),
            "p95": mean("p95"),
            "p99": mean("p99"),
            "errors": f"{total('non_2xx'):.0f}/{total('socket'):.0f}",
            "cpu_ms": total("server_cpu") / n * 1000,
            "client": f"{total('client_cpu') / n * 1000:.2f}",
            "other": f"{total('other_cpu') / seconds:.2f} ({total('idle_cpu') / seconds:.2f})",
            "other_cores": (total("other_cpu") - total("idle_cpu")) / seconds,
        }


# other CPU: the machine's busy CPU in the round minus the server's and wrk's, in cores: what
# else ran meanwhile (other processes on the machine), of which (in parentheses) the servers
# waiting for their turn
HEAD = (
    "| server | conc. | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors (non-2xx/socket) "
    "| server CPU ms/req | wrk CPU ms/req | other CPU, cores (idle servers) | load 1/5/15 |\n"
    + "|---" * 12
    + "|"
)


def _row(name: str, c: int, r: dict[str, Any]) -> str:
    cells = [name, c, f"{r['rps']:.1f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['p99']:.1f}"]
    cells += [f"{r['p99'] / max(r['p50'], 1e-9):.2f}", r["errors"], f"{r['cpu_ms']:.1f}"]
    cells += [r["client"], r["other"], _load()]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _first_200(server: Any, body: bytes, headers: dict[str, str], timeout_s: float) -> float:
    """Seconds from the server's process start to its first 200 on ``POST /predict``."""
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited: {server.log_path.read_text()[-3000:]}")
            try:
                if client.post("/predict", content=body, headers=headers).status_code == 200:
                    return time.monotonic() - float(server.started)
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"no 200 from {server.base_url}/predict in {timeout_s} s")


def _recorded(database_url: str) -> int:
    """Rows in ``predictions``: every answered request of ours is recorded."""
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = sqlalchemy.text("SELECT count(*) FROM predictions")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@dataclass
class Run:
    """One run's settings and environments: starts the servers it measures."""

    work: Path
    workers: int
    model_workers: int
    cores: int
    env: dict[str, str]  # ours (RAKUTEN_*)
    peer_env: dict[str, str]  # BentoML (RAKUTEN_BENTO_*)
    bentoml_venv: Path
    baseline_src: Path | None = None

    def start(self, name: str, n: int) -> Any:
        """Start server ``name`` with ``n`` workers (returns at once; wait for it to be ready)."""
        log = self.work / f"{name.replace(' ', '-')}-{n}.out"
        if name == PEER:
            model_workers = min(n, self.model_workers)
            env = self.peer_env | {
                "RAKUTEN_BENTO_API_WORKERS": str(n),
                "RAKUTEN_BENTO_MODEL_WORKERS": str(model_workers),
                **_model_threads(model_workers, self.cores),
            }
            home = self.work / "bentoml-home"
            return BentoProcess(env, log_path=log, home=home, venv=self.bentoml_venv)
        env = self.env | {
            UNBATCHED: {"RAKUTEN_BATCH_ENABLED": "false"},
            BASELINE: {"PYTHONPATH": str(self.baseline_src)},
        }.get(name, {})
        return ServeProcess(env, workers=n, log_path=log, args=["--no-migrate"])


def cold_starts(run: Run, body: bytes, headers: dict[str, str], rounds: int) -> dict[str, Any]:
    """Ours then BentoML, one worker each, alone on the machine: start -> first 200."""
    colds: dict[str, list[tuple[float, float]]] = {OURS: [], PEER: []}
    for _ in range(rounds):
        for name in (OURS, PEER):
            server = run.start(name, 1)
            try:
                seconds = _first_200(server, body, headers, timeout_s=600)
                colds[name].append((seconds, server.cpu_seconds()))
            finally:
                server.close()
            print(f"cold start {name}, 1 worker: first 200 after {seconds:.1f} s", flush=True)
    return colds


def measure(
    run: Run,
    names: list[str],
    limit_args: dict[str, Any],
    *,
    levels: list[int],
    rounds: int,
    duration: float,
    products: list[Product],
    token: str,
) -> tuple[dict[tuple[str, int], Rounds], dict[int, dict[str, Any]], dict[str, Any]]:
    """The servers ``names`` at ``run.workers`` workers, round after round, and the limit.

    Returns the rounds per (server, concurrency), the limit per concurrency and each server's
    resident memory per process at the end.
    """

    servers: dict[str, Any] = {}
    results: dict[tuple[str, int], Rounds] = {}
    limits: dict[int, dict[str, Any]] = {}
    memory: dict[str, list[tuple[str, float, float]]] = {}
    limit: InProcessLimit | None = None
    try:
        for name in names:  # all start at once; each is measured alone
            servers[name] = run.start(name, run.workers)
        for name, server in servers.items():
            ready = server.wait_ready(timeout_s=600)
            if isinstance(server, ServeProcess):
                server.wait_workers(timeout_s=600)
            print(f"{name} up: ready after {ready:.1f} s (load {_load()})", flush=True)
        script = write_script(token, run.work, products)
        for server in servers.values():  # warm-up: connections, allocator, caches
            run_wrk(
                server.base_url, "", connections=8, duration_s=3, workdir=run.work, script=script
            )
        limit = InProcessLimit(products=products, workers=run.workers, **limit_args)
        print(f"\nrounds of {duration:g} s; in-process limit: {run.workers} processes\n{HEAD}")
        for c in levels:
            for _ in range(rounds):
                for name, server in servers.items():
                    cpu, busy = server.cpu_seconds(), busy_cpu_seconds()
                    idle = _cpu_of(servers, but=name)
                    w = run_wrk(
                        server.base_url,
                        "",
                        connections=c,
                        duration_s=duration,
                        workdir=run.work,
                        script=script,
                    )
                    done = results.setdefault((name, c), Rounds())
                    cpu, busy = server.cpu_seconds() - cpu, busy_cpu_seconds() - busy
                    idle = _cpu_of(servers, but=name) - idle
                    print(_row(name, c, done.add(w, cpu, busy, idle)), flush=True)
            idle = _cpu_of(servers)
            limits[c] = limit.measure(c, duration)
            idle = (_cpu_of(servers) - idle) / limits[c]["seconds"]
            limits[c]["other"] += f" ({idle:.2f})"
            print(_row("in-process limit", c, limits[c]), flush=True)
        for name, server in servers.items():
            labels = server.service_names() if isinstance(server, BentoProcess) else {}
            pids = server.worker_pids()
            memory[name] = [(labels.get(pid, "worker"), *rss_mib(pid)) for pid in pids]
    finally:
        if limit is not None:
            limit.close()
        for server in servers.values():
            server.close()
    return results, limits, memory


def _verdict(value: float, target: float, *, at_least: bool) -> str:
    met = value >= target if at_least else value <= target
    return f"(target {'>=' if at_least else '<='} {target:g}: {'met' if met else 'NOT met'})"


def report_targets(
    results: dict[tuple[str, int], Rounds],
    limits: dict[int, dict[str, Any]],
    colds: dict[str, list[tuple[float, float]]],
    run: Run,
) -> None:
    """The issue #24 targets, as ratios of this run's figures."""

    def get(name: str, c: int) -> dict[str, Any]:
        return results[(name, c)].summary()

    levels = sorted({c for _, c in results})
    key = 32 if 32 in levels else max(levels)
    low = 8 if 8 in levels else min(levels)
    ours, peer, lim = get(OURS, key), get(PEER, key), limits[key]
    ours_low, peer_low = get(OURS, low), get(PEER, low)
    lines: list[tuple[str, str]] = []

    def ratio_line(label: str, ratio: float, detail: str, target: float, at_least: bool) -> None:
        lines.append(
            (label, f"{ratio:.2f} ({detail}) {_verdict(ratio, target, at_least=at_least)}")
        )

    ratio_line(
        f"ours req/s / BentoML req/s at c={key}",
        ours["rps"] / peer["rps"],
        f"{ours['rps']:.1f} / {peer['rps']:.1f}",
        2.5,
        at_least=True,
    )
    lines.append(
        (
            f"BentoML / ours CPU ms/request at c={key}",
            f"{peer['cpu_ms'] / ours['cpu_ms']:.2f} ({peer['cpu_ms']:.1f} / {ours['cpu_ms']:.1f}: "
            "the req/s ratio once both are CPU-bound; steadier than req/s on a shared machine)",
        )
    )
    ratio_line(
        f"ours p99 / BentoML p99 at c={low}",
        ours_low["p99"] / peer_low["p99"],
        f"{ours_low['p99']:.0f} / {peer_low['p99']:.0f} ms",
        0.25,
        at_least=False,
    )
    per_level = {c: get(OURS, c)["rps"] / get(UNBATCHED, c)["rps"] for c in levels}
    ratio_line(
        "ours batched / unbatched req/s, lowest",
        min(per_level.values()),
        ", ".join(f"c={c} {r:.2f}" for c, r in per_level.items()),
        1.0,
        at_least=True,
    )
    cpu = {c: get(UNBATCHED, c)["cpu_ms"] / get(OURS, c)["cpu_ms"] for c in levels}
    lines.append(
        (
            "ours unbatched / batched CPU ms/request",
            ", ".join(f"c={c} {r:.2f}" for c, r in cpu.items()) + " (the same, by CPU)",
        )
    )
    own = ours["cpu_ms"] - lim["cpu_ms"]
    lines.append(
        (
            f"server's own cost at c={key}",
            f"{own:.1f} CPU ms/request (served {ours['cpu_ms']:.1f} - in-process "
            f"{lim['cpu_ms']:.1f}, same inputs, {run.workers} processes each)",
        )
    )
    peer_own = peer["cpu_ms"] - lim["cpu_ms"]  # the same model calls on the same inputs
    ratio_line(
        f"ours / BentoML own cost at c={key}",
        own / peer_own,
        f"{own:.1f} / {peer_own:.1f} CPU ms/request, the model's in-process cost taken out",
        0.5,
        at_least=False,
    )
    served = ours["rps"] / lim["rps"]
    lines.append(
        (f"served / in-process req/s at c={key}", f"{served:.2f} (a diagnostic, aim 0.80)")
    )
    ratio_line(
        f"ours p99 / p50 at c={key}",
        ours["p99"] / ours["p50"],
        f"{ours['p99']:.0f} / {ours['p50']:.0f} ms",
        2.5,
        at_least=False,
    )
    if colds[OURS]:
        cold = {name: sum(s for s, _ in v) / len(v) for name, v in colds.items()}
        ratio_line(
            "cold start ours / BentoML",
            cold[OURS] / cold[PEER],
            f"{cold[OURS]:.1f} s / {cold[PEER]:.1f} s, 1 worker, start -> first 200 on /predict",
            0.25,
            at_least=False,
        )
    if run.baseline_src:
        base = get(BASELINE, key)
        lines.append(
            (
                f"ours / baseline req/s at c={key}",
                f"{ours['rps'] / base['rps']:.2f} (baseline p99/p50 "
                f"{base['p99'] / base['p50']:.2f}; {run.baseline_src})",
            )
        )
    client = ", ".join(f"c={c} {get(OURS, c)['client']}" for c in levels)
    lines.append(("wrk's own CPU, ms/request (ours)", client))
    print(f"\ntargets (workers = {run.workers} on {run.cores} cores; load average now {_load()}):")
    others = [r.summary()["other_cores"] for r in results.values()]
    if (busy := sum(others) / len(others)) > 0.1 * run.cores:
        print(
            f"  WARNING: other processes on this machine used {busy:.2f} of its {run.cores} cores "
            "on average during the rounds: every figure here is disturbed by them"
        )
    width = max(len(label) for label, _ in lines) + 1
    for label, text in lines:
        print(f"  {label + ':':<{width}} {text}")


@app.command(help=HELP)
def main(
    model: Annotated[
        Path | None,
        typer.Option(help="Bundle dir (default: models/current, else one built once and cached)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help=f"Concurrency {QUICK_LEVELS}, 5 s rounds, 1 round (~3 min).")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Seconds per round [15; quick: 5].")
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated levels [{FULL_LEVELS}; quick: {QUICK_LEVELS}]."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per server and concurrency [2; quick: 1].")
    ] = None,
    cold_rounds: Annotated[int, typer.Option(min=0, help="Cold starts per server.")] = 1,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Workers of every server, limit loops [cores].")
    ] = None,
    bentoml_venv: Annotated[
        Path, typer.Option(help="BentoML's environment (bench/bentoml/setup.sh makes it).")
    ] = ROOT / ".venv-bentoml",
    bentoml_model_workers: Annotated[
        int | None, typer.Option(min=1, help="Workers of BentoML's model service [--workers].")
    ] = None,
    baseline_src: Annotated[
        Path | None,
        typer.Option(
            help="Also measure our batched server with this PYTHONPATH (before/after in one run), "
            "e.g. from `git archive <commit> services/serve/src libs/core/src | tar -x -C "
            "/tmp/old`: /tmp/old/services/serve/src:/tmp/old/libs/core/src."
        ),
    ] = None,
    install_wrk: Annotated[bool, typer.Option(help="apt-get install wrk if missing.")] = True,
) -> None:
    duration = duration or (5 if quick else 15)
    rounds = rounds or (1 if quick else 2)
    levels = [int(c) for c in (concurrency or (QUICK_LEVELS if quick else FULL_LEVELS)).split(",")]
    ensure_wrk(install_wrk)
    ensure_bentoml(bentoml_venv)
    work = Path(tempfile.mkdtemp(prefix="rakuten-bench-serve-"))
    bundle = _model(model)
    products, source = real_products(64)

    defaults = ServeSettings(_env_file=None)
    settings = serve_settings(
        work,
        model_path=str(bundle),
        predict_rate_limit=RATE_LIMIT,
        batch_max_size=defaults.batch_max_size,
        user_cache_seconds=defaults.user_cache_seconds,
    )
    migrate_and_add_users(settings, {"bench": ["predict"]})
    token = create_access_token(
        "bench", ["predict"], key=settings.signing_key(), expires_in=timedelta(hours=6)
    )
    cores = len(os.sched_getaffinity(0))
    run = Run(
        work=work,
        workers=workers or cores,
        model_workers=bentoml_model_workers or workers or cores,
        cores=cores,
        env=settings_env(settings, RAKUTEN_RATE_LIMIT_ENABLED="true", RAKUTEN_LOG_LEVEL="WARNING"),
        peer_env={
            "RAKUTEN_BENTO_BUNDLE": str(bundle),
            "RAKUTEN_BENTO_MAX_BATCH": str(settings.batch_max_size),
        },
        bentoml_venv=bentoml_venv,
        baseline_src=baseline_src,
    )

    print(f"model {bundle}; inputs: {source}")
    print(
        f"{cores} cores (sched_getaffinity), workers = {run.workers} for every server; "
        f"load average (1/5/15 min) at start {_load()}"
    )
    print(
        f"ours: batching max size {settings.batch_max_size}, max wait "
        f"{settings.batch_max_wait_ms:g} ms; limits on: bearer-token authentication (user looked "
        f"up, cached {settings.user_cache_seconds:g} s), rate limit {settings.predict_rate_limit} "
        "per user (raised by RAKUTEN_PREDICT_RATE_LIMIT), every prediction recorded (journal + "
        "SQLite), metrics on, access log off"
    )
    print(
        f"BentoML {bentoml_version(bentoml_venv)}: Classifier (HTTP, our prepare_input) "
        f"workers={run.workers} -> Model (batchable API, max_batch_size="
        f"{settings.batch_max_size}, max_latency_ms=60000: its default, a deadline ours does not "
        f"have) workers={run.model_workers}; runner_connection max_requests=max_age=1e9 "
        "(default 100 requests / 300 s), access log off, metrics on (its default); no "
        "authentication, rate limit or recording",
        flush=True,
    )

    boundary = "benchcoldstart"
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Authorization": f"Bearer {token}",
    }
    colds = cold_starts(run, multipart_body(products[0], boundary), headers, cold_rounds)
    names = [OURS, PEER, UNBATCHED] + ([BASELINE] if baseline_src else [])
    results, limits, memory = measure(
        run,
        names,
        {"bundle": bundle, "max_batch": settings.batch_max_size},
        levels=levels,
        rounds=rounds,
        duration=duration,
        products=products,
        token=token,
    )
    if rounds > 1:
        print(f"\nsummary ({rounds} rounds of {duration:g} s each; limit: 1 round)\n{HEAD}")
        for c in levels:
            for name in names:
                print(_row(name, c, results[(name, c)].summary()))
            print(_row("in-process limit", c, limits[c]))
    report_targets(results, limits, colds, run)
    print("\nresident memory per process, MiB (peak):")
    for name, mems in memory.items():
        print(f"  {name}: " + ", ".join(f"{what} {rss:.0f} ({hwm:.0f})" for what, rss, hwm in mems))
    print(f"predictions recorded by ours: {_recorded(settings.database_url)} (recording on)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
