"""``/predict`` through the compose stack's proxy (TLS), before and after a change, side by side.

    python bench/stack_predict.py --before 1984da9 [--duration 20] [--connections 8] [--rounds 3]

Builds the images of two revisions (``--before``, checked out in a temporary git worktree, and
the working tree), starts both stacks at once (each on its own loopback ports, offline sample
data, two serve workers, TLS with a certificate made here, Postgres and Redis as the stack has
them), raises the rate limits of both through their settings (serve's per user and per address,
and the proxy's where the revision has them), creates one user in each, then loads
``POST /predict`` over HTTPS with ``wrk`` (native: it leaves the CPU to the servers; its own CPU is
printed), alternating the two stacks round by round so that the machine's drift hits both. The
idle stack keeps running (its monitor and Prometheus tick) in both roles, so the comparison is
fair. Prints each round, the medians and after / before. Both stacks and the worktree are
removed at the end. Needs the Docker engine and wrk (``make system-deps``); minutes to build.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.utils: shared with the tests (engine, wrk, products)

import httpx  # noqa: E402

from tests.utils.compose import base_images, ensure_base_images, ensure_engine, run  # noqa: E402
from tests.utils.compose_stack import self_signed  # noqa: E402
from tests.utils.products import real_products  # noqa: E402
from tests.utils.wrk import run_wrk, write_script  # noqa: E402

SERVICES_WAITED = ("serve", "proxy")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    name: str
    tree: Path
    env_file: Path
    https_port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    token: str = ""

    def compose(self, *args: str, timeout: float = 600, input_text: str | None = None) -> str:
        command = ["docker-compose", "-p", f"bench{self.name}", "-f", "docker-compose.yml"]
        result = run(
            [*command, "--env-file", str(self.env_file), *args],
            timeout=timeout,
            input_text=input_text,
            cwd=self.tree,
        )
        return result.stdout + result.stderr

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def _env(stack_dir: Path, name: str, tls: Path) -> tuple[Path, int]:
    https = _port()
    logs = stack_dir / "logs"
    logs.mkdir(parents=True)
    values = {
        "STACK_IMAGE_TAG": f"bench-{name}",
        "STACK_DATA_SOURCE": "sample",
        "STACK_SAMPLE_TRAIN_ROWS": "600",
        "STACK_SAMPLE_TEST_ROWS": "40",
        "STACK_TRAIN_ARGS": "--set epochs=1",
        "STACK_MLFLOW_WORKERS": "1",
        "STACK_SERVE_WORKERS": "2",
        "STACK_LOGS_DIR": str(logs),
        "STACK_TLS_DIR": str(tls),
        "STACK_BIND_ADDRESS": "127.0.0.1",
        "STACK_HTTP_PORT": str(_port()),
        "STACK_HTTPS_PORT": str(https),
        **{f"STACK_{s}_PORT": str(_port()) for s in ("MLFLOW", "PROMETHEUS", "ALERTMANAGER")},
        # the limits, raised through their settings (a revision ignores what it does not know)
        "RAKUTEN_PREDICT_RATE_LIMIT": "100000000/minute",
        "RAKUTEN_TOKEN_RATE_LIMIT": "1000/minute",
        "STACK_PROXY_API_RATE": "100000r/s",
        "STACK_PROXY_API_BURST": "100000",
        "STACK_PROXY_CONN_LIMIT": "10000",
        # what a revision before generated secrets requires in its .env (random, production)
        "RAKUTEN_ENVIRONMENT": "production",
        "RAKUTEN_JWT_SECRET": secrets.token_urlsafe(48),
        "STACK_POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "STACK_GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "STACK_AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "STACK_AIRFLOW_SECRET_KEY": secrets.token_urlsafe(48),
    }
    env_file = stack_dir / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env_file, https


def _wait_ready(stack: Stack, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.url}/health/ready", verify=False, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(3)
    raise SystemExit(f"{stack.name}: not ready after {timeout_s:.0f} s")


def _start(stack: Stack) -> None:
    stack.compose("build", timeout=3600)
    stack.compose("up", "-d", timeout=1800)
    _wait_ready(stack)
    out = stack.compose(
        "exec",
        "-T",
        "serve",
        "rakuten-serve",
        "users",
        "create",
        "bench",
        "-s",
        "predict",
        "--password-stdin",
        input_text=stack.password + "\n",
    )
    assert "created bench" in out, out
    response = httpx.post(
        f"{stack.url}/token",
        data={"username": "bench", "password": stack.password},
        verify=False,
        timeout=30,
    )
    response.raise_for_status()
    stack.token = response.json()["access_token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' stack")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make system-deps` (Debian's wrk)")
    ensure_engine()
    ensure_base_images([t for t in base_images() if not t.startswith("grafana/")])
    work = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    before_tree = work / "before-tree"
    run(["git", "worktree", "add", "--detach", str(before_tree), args.before], timeout=120)
    tls = self_signed(work / "tls").parent
    stacks = []
    for name, tree in (("before", before_tree), ("after", ROOT)):
        env_file, https = _env(work / name, name, tls)
        stacks.append(Stack(name, tree, env_file, https))
    products, source = real_products(64)
    results: dict[str, list[tuple[float, float, float, float]]] = {s.name: [] for s in stacks}
    try:
        for stack in stacks:
            started = time.monotonic()
            _start(stack)
            print(
                f"{stack.name}: {args.before if stack.name == 'before' else 'working tree'}"
                f" up in {time.monotonic() - started:.0f} s",
                flush=True,
            )
        scripts = {s.name: write_script(s.token, work / f"wrk-{s.name}", products) for s in stacks}
        for stack in stacks:  # warm-up: model caches, connections, the JIT of nothing
            run_wrk(
                stack.url,
                stack.token,
                connections=args.connections,
                duration_s=5,
                workdir=work,
                script=scripts[stack.name],
            )
        print(
            f"POST /predict over HTTPS, {args.connections} connections, {args.duration:.0f} s "
            f"a run, products: {source}",
            flush=True,
        )
        print(
            f"{'round':>5} {'stack':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'non-2xx':>7} {'wrk cpu s':>9}",
            flush=True,
        )
        for round_ in range(1, args.rounds + 1):
            order = stacks if round_ % 2 else list(reversed(stacks))
            for stack in order:
                result = run_wrk(
                    stack.url,
                    stack.token,
                    connections=args.connections,
                    duration_s=args.duration,
                    workdir=work,
                    script=scripts[stack.name],
                )
                row = (result.rps, result.p50_ms, result.p99_ms, result.client_cpu_s)
                results[stack.name].append(row)
                print(
                    f"{round_:>5} {stack.name:>7} {result.rps:>8.1f} {result.p50_ms:>7.1f} "
                    f"{result.p99_ms:>7.1f} {result.non_2xx:>7} {result.client_cpu_s:>9.2f}",
                    flush=True,
                )
        median = {n: statistics.median(r[0] for r in rows) for n, rows in results.items()}
        print(
            f"median req/s: before {median['before']:.1f}, after {median['after']:.1f}, "
            f"after / before {median['after'] / median['before']:.3f}",
            flush=True,
        )
    finally:
        for stack in stacks:
            subprocess.run(
                [
                    "docker-compose",
                    "-p",
                    f"bench{stack.name}",
                    "-f",
                    "docker-compose.yml",
                    "--env-file",
                    str(stack.env_file),
                    "down",
                    "-v",
                    "--timeout",
                    "10",
                ],
                cwd=stack.tree,
                capture_output=True,
                check=False,
                timeout=300,
            )
        run(["git", "worktree", "remove", "--force", str(before_tree)], timeout=120, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
