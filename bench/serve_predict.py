"""``/predict`` measured on the server: batched vs unbatched vs the in-process limit, side by side.

Real ``rakuten-serve run`` servers (fresh SQLite database, rate limit off, default batching
settings) start one after the other on 127.0.0.1: micro-batching on, then off (one uvicorn
worker each), then batching on with ``--workers`` processes (2 by default: one per core); each
start is a cold-start figure (process start -> first 200 on ``/health/ready``). The load comes
from ``wrk``, a native load generator, so the client leaves the CPU to the server (its own CPU
is printed); a Lua script cycles through multipart bodies built from real rows and real
500x500 JPEGs (``../shared/data/rakuten``, else the offline sample). For each concurrency, the
servers and the in-process limit (this process: the same ``prepare_input`` on a 2-thread pool
like the server's decode pool, then ``predict_batch`` on batches of min(concurrency, max batch)
products, no HTTP) run back to back, so the machine's load drifts over all of them alike.
Printed per row: req/s, latency p50/p95/p99, errors (non-2xx answers, socket errors), server
CPU per request, the wrk process's CPU, the load average. Then the issue's targets as ratios,
and resident memory per worker. Prints figures; asserts nothing.

    uv run --frozen python bench/serve_predict.py                       # full run (~5 min)
    uv run --frozen python bench/serve_predict.py --duration 5 --concurrency 8,32 --workers 1
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils: shared with the tests (server, wrk, products)

app = typer.Typer(add_completion=False, rich_markup_mode=None)
HELP = """Measure /predict on real servers: batched vs unbatched vs the in-process limit.

Starts a batched and an unbatched `rakuten-serve run` (1 worker each), a batched and an
unbatched one with --workers processes and, for a bundle with the ONNX export, a batched one
with the Keras runtime (cold starts printed),
loads them with wrk (native; real rows + 500x500 JPEGs, multipart, bearer token) at each
concurrency, back to back with the in-process limit, and prints req/s, p50/p95/p99, errors,
server CPU/request, wrk's own CPU, the load average, the issue #13 target ratios and RSS per
worker. Asserts nothing. Full run about 5 minutes on 2 cores; a quick one (about 2 minutes):

\b
  uv run --frozen python bench/serve_predict.py --duration 5 --concurrency 8,32 --workers 1
"""

MODES = ("batched", "unbatched")


def ensure_wrk(install: bool) -> None:
    """wrk from Debian (``apt-get install wrk``) when missing, or a clear exit."""
    if shutil.which("wrk"):
        return
    if install and shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk missing: apt-get install -y wrk", flush=True)
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
            subprocess.run(command, check=False, capture_output=True, timeout=600)
    if not shutil.which("wrk"):
        print(
            "error: this benchmark needs wrk (a native HTTP load generator): "
            "`sudo apt-get install wrk` or `make system-deps`",
            file=sys.stderr,
        )
        raise typer.Exit(1)


def _model(model: Path | None, work: Path) -> Path:
    if model is not None:
        return model
    if (ROOT / "models" / "current" / "bundle.json").is_file():
        return ROOT / "models" / "current"
    from tests.utils.bundles import build_small_bundle  # noqa: PLC0415
    from tests.utils.paths import SHARED_DATA  # noqa: PLC0415

    texts = SHARED_DATA / "text_fr" / "products.csv"
    real = texts if texts.is_file() else None
    print(
        "building a production-shaped bundle (1 epoch on the generated sample"
        + (", real French texts: vocabularies at their caps)..." if real else ")..."),
        flush=True,
    )
    return build_small_bundle(
        work / "bundle-build", train_rows=3000, overrides=production_shaped(), real_texts=real
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


def _bundle_shape(bundle: Path) -> str:
    """Size on disk and the wide part's width: what decides the cost of a model call."""
    from rakuten_core.bundle import SERVING_DIR, TEXT_SPEC_FILE  # noqa: PLC0415
    from rakuten_core.text_vectors import TextSpec  # noqa: PLC0415

    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) / 2**20
    spec_file = bundle / SERVING_DIR / TEXT_SPEC_FILE
    if not spec_file.is_file():
        return f"{size:.0f} MiB"
    spec = TextSpec.model_validate_json(spec_file.read_text(encoding="utf-8"))
    words, chars = (len(v.tokens) if v else 0 for v in (spec.words, spec.chars))
    return f"{size:.0f} MiB; wide part: {words} word + {chars} char n-grams"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class InProcess:
    """The same preprocessing and batched model calls as the server, no HTTP."""

    def __init__(
        self, model: Path, products: list[Any], max_batch: int, runtime: str = "auto"
    ) -> None:
        from rakuten_serve.predictor import Predictor, load_model  # noqa: PLC0415
        from rakuten_serve.settings import ServeSettings  # noqa: PLC0415

        self.limits = ServeSettings(_env_file=None).image_limits  # type: ignore[call-arg]
        loaded = load_model(
            str(model),
            cache_dir=Path(tempfile.gettempdir()),
            runtime=runtime,  # type: ignore[arg-type]
        )
        self.runtime = loaded.bundle.runtime_name
        self.predictor = Predictor(loaded)
        self.size = loaded.image_size
        self.products = products
        self.max_batch = max_batch
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")

    def _prepare(self, i: int) -> Any:
        from rakuten_serve.predictor import prepare_input  # noqa: PLC0415

        p = self.products[i % len(self.products)]
        return prepare_input(
            p.designation, p.description, p.image, image_size=self.size, limits=self.limits
        )

    def measure(self, concurrency: int, duration_s: float) -> dict[str, float]:
        batch = min(concurrency, self.max_batch)
        done, times, i = 0, [], 0
        self.predictor.predict_batch(list(self.pool.map(self._prepare, range(batch))))
        cpu, started = time.process_time(), time.perf_counter()
        while time.perf_counter() - started < duration_s:
            t0 = time.perf_counter()
            items = list(self.pool.map(self._prepare, range(i, i + batch)))
            self.predictor.predict_batch(items)
            times.append((time.perf_counter() - t0) * 1000)
            i, done = i + batch, done + batch
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
        return {
            "rps": done / elapsed,
            "p50": pick(0.50),
            "p95": pick(0.95),
            "p99": pick(0.99),
            "cpu_ms": cpu / done * 1000,
        }


def _start(
    mode: str, base_env: dict[str, str], workers: int, work: Path
) -> tuple[Any, float, float]:
    from tests.utils.serve_app import ServeProcess  # noqa: PLC0415

    env = base_env | {"RAKUTEN_BATCH_ENABLED": str(not mode.startswith("unbatched")).lower()}
    log = work / f"{mode.replace(' ', '-')}-{workers}.out"
    server = ServeProcess(env, workers=workers, log_path=log, args=["--no-migrate"])
    try:
        cold = server.wait_ready(timeout_s=600)
        cpu = server.cpu_seconds()  # steadier than wall seconds on a loaded machine
        server.wait_workers(timeout_s=600)
    except BaseException:
        server.close()
        raise
    return server, cold, cpu


def _row(name: str, c: int, r: dict[str, float]) -> str:
    cells = [name, str(c), f"{r['rps']:.1f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}"]
    cells += [f"{r['p99']:.1f}", f"{r['p99'] / max(r['p50'], 1e-9):.1f}"]
    cells += [r.get("errors", "-"), f"{r['cpu_ms']:.1f}", r.get("client", "-"), _load()]
    return "| " + " | ".join(str(c) for c in cells) + " |"


@app.command(help=HELP)
def main(
    model: Annotated[
        Path | None, typer.Option(help="Bundle dir (default: models/current, else build one).")
    ] = None,
    duration: Annotated[float, typer.Option(min=1, help="Seconds per measurement.")] = 15,
    concurrency: Annotated[
        str, typer.Option(help="Comma-separated concurrency levels (wrk connections).")
    ] = "1,8,32,64",
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Also measure a batched server with N workers (1: none); RSS per worker."
        ),
    ] = 2,
    install_wrk: Annotated[bool, typer.Option(help="apt-get install wrk if missing.")] = True,
    baseline_src: Annotated[
        Path | None,
        typer.Option(
            help="Also run a batched server with this PYTHONPATH (before/after in one run), "
            "e.g. from `git archive <commit> services/serve/src | tar -x -C /tmp/old`: "
            "/tmp/old/services/serve/src:/tmp/old/libs/core/src."
        ),
    ] = None,
    keras_too: Annotated[
        bool,
        typer.Option(
            help="For a bundle with serving/ (the ONNX runtime by default), also measure a "
            "batched server and the in-process limit with RAKUTEN_MODEL_RUNTIME=keras.",
        ),
    ] = True,
) -> None:
    from rakuten_serve.settings import ServeSettings  # noqa: PLC0415
    from tests.utils.proc_stats import rss_mib  # noqa: PLC0415
    from tests.utils.products import real_products  # noqa: PLC0415
    from tests.utils.serve_app import (  # noqa: PLC0415
        PASSWORD,
        get_token,
        migrate_and_add_users,
        serve_settings,
        settings_env,
    )
    from tests.utils.wrk import run_wrk, write_script  # noqa: PLC0415

    ensure_wrk(install_wrk)
    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    work = Path(tempfile.mkdtemp(prefix="rakuten-bench-serve-"))
    bundle = _model(model, work)
    products, source = real_products(64)
    defaults = ServeSettings(_env_file=None)  # type: ignore[call-arg]
    settings = serve_settings(
        work,
        model_path=str(bundle),
        rate_limit_enabled=False,
        batch_max_size=defaults.batch_max_size,
        user_cache_seconds=defaults.user_cache_seconds,
    )
    migrate_and_add_users(settings, {"bench": ["predict"]})
    env = settings_env(settings, RAKUTEN_RATE_LIMIT_ENABLED="false", RAKUTEN_LOG_LEVEL="WARNING")
    print(f"model {bundle}; inputs: {source}")
    print(f"bundle: {_bundle_shape(bundle)}")
    print(
        f"batching: max size {settings.batch_max_size}, max wait {settings.batch_max_wait_ms} ms;"
        f" {os.cpu_count()} cores; load average (1/5/15 min) at start {_load()}",
        flush=True,
    )
    servers: dict[str, Any] = {}
    colds: list[tuple[str, int, float, float, list[tuple[float, float]]]] = []
    # mode -> (worker processes, environment); the multi-worker server is measured like the others
    plan = dict.fromkeys(MODES, (1, env))
    if workers > 1:  # both modes, so that batching is also compared worker for worker
        plan[f"batched x{workers}"] = (workers, env)
        plan[f"unbatched x{workers}"] = (workers, env)
    if baseline_src:
        plan["baseline"] = (1, env | {"PYTHONPATH": str(baseline_src)})
    runtimes = ["auto"]
    if keras_too and (bundle / "serving").is_dir():  # the same bundle run by Keras, side by side
        plan["batched keras"] = (1, env | {"RAKUTEN_MODEL_RUNTIME": "keras"})
        runtimes.append("keras")
    try:
        for mode, (n_workers, mode_env) in plan.items():
            servers[mode], cold, cpu = _start(mode, mode_env, n_workers, work)
            print(
                f"{mode} server ready: cold start {cold:.1f} s, {cpu:.1f} CPU s (load {_load()})",
                flush=True,
            )
            colds.append((mode, n_workers, cold, cpu, []))
        scripts = {}
        import httpx  # noqa: PLC0415

        for mode, server in servers.items():
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                token = get_token(client, "bench", PASSWORD)
            scripts[mode] = write_script(token, work, products)
            run_wrk(
                server.base_url,
                token,
                connections=8,
                duration_s=3,
                workdir=work,
                script=scripts[mode],
            )  # warm-up: connections, allocator, caches
        locals_ = {
            runtime: InProcess(bundle, products, settings.batch_max_size, runtime)
            for runtime in runtimes
        }
        local = locals_["auto"]
        print(f"in-process limit: the {local.runtime} runtime (the servers' default)")

        head = "| mode | conc. | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors (non-2xx/"
        print(f"\n{head}socket) | server CPU ms/req | wrk CPU ms/req | load 1/5/15 |")
        print("|" + "---|" * 11)
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for c in levels:
            for mode, server in servers.items():
                cpu = server.cpu_seconds()
                w = run_wrk(
                    server.base_url,
                    "",
                    connections=c,
                    duration_s=duration,
                    workdir=work,
                    script=scripts[mode],
                )
                n = max(w.requests, 1)
                r = {
                    "rps": w.rps,
                    "p50": w.p50_ms,
                    "p95": w.p95_ms,
                    "p99": w.p99_ms,
                    "errors": f"{w.non_2xx}/{w.transport_errors}",
                    "cpu_ms": (server.cpu_seconds() - cpu) / n * 1000,
                    "client": f"{w.client_cpu_s / n * 1000:.2f}",
                }
                results[(mode, c)] = r
                print(_row(f"{mode} server", c, r), flush=True)
            results[("local", c)] = local.measure(c, duration)
            print(_row("in-process limit", c, results[("local", c)]), flush=True)
            if "keras" in locals_:
                results[("local keras", c)] = locals_["keras"].measure(c, duration)
                print(_row("in-process keras", c, results[("local keras", c)]), flush=True)

        for i, server in enumerate(servers.values()):
            colds[i][4].extend(rss_mib(p) for p in server.worker_pids())
    finally:
        for server in servers.values():
            server.close()

    print(
        "\nin-process limit: prepare_input on a 2-thread pool + predict_batch on batches of "
        f"min(conc., {settings.batch_max_size}), in this process; its latency is per batch"
    )
    key = 32 if 32 in levels else max(levels)
    b, u, lim = results[("batched", key)], results[("unbatched", key)], results[("local", key)]
    print(f"\ntargets at concurrency {key} (load {_load()}):")
    print(f"  batched server / in-process limit: {b['rps'] / lim['rps']:.2f} (target >= 0.80)")
    print(f"  batched / unbatched server:        {b['rps'] / u['rps']:.2f}x (target >= 3x)")
    print(f"  batched p99 / p50:                 {b['p99'] / b['p50']:.2f} (target <= 2.5)")
    if workers > 1:
        m, name = results[(f"batched x{workers}", key)], f"batched x{workers} workers"
        print(f"  {name} / in-process limit: {m['rps'] / lim['rps']:.2f} (target >= 0.80)")
        print(f"  {name} / unbatched server: {m['rps'] / u['rps']:.2f}x (target >= 3x)")
        mu = results[(f"unbatched x{workers}", key)]
        print(f"  {name} / unbatched x{workers}: {m['rps'] / mu['rps']:.2f}x (worker for worker)")
        print(f"  {name} p99 / p50:          {m['p99'] / m['p50']:.2f} (target <= 2.5)")
    if "keras" in locals_:
        k, kl = results[("batched keras", key)], results[("local keras", key)]
        print(f"  keras runtime: batched server {k['rps']:.1f} req/s, in-process {kl['rps']:.1f}")
        print(f"  keras batched / keras in-process:  {k['rps'] / kl['rps']:.2f}")
        print(f"  default batched / keras batched:   {b['rps'] / k['rps']:.2f}x")
    if baseline_src:
        o = results[("baseline", key)]
        print(f"  baseline batched / in-process:     {o['rps'] / lim['rps']:.2f} ({baseline_src})")
        print(f"  baseline batched p99 / p50:        {o['p99'] / o['p50']:.2f}")
    print("\ncold start (process start -> /health/ready 200) and resident memory per worker:")
    for mode, n_workers, cold, cpu, mems in colds:
        mem = ", ".join(f"{rss:.0f} MiB (peak {hwm:.0f})" for rss, hwm in mems)
        print(
            f"  {mode:<9} workers={n_workers}: {cold:5.1f} s, {cpu:5.1f} CPU s "
            f"(target < 8 s with 1); RSS {mem}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
