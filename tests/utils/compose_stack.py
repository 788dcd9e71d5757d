"""The compose stack the e2e and the attack suite share (one per test session).

A unique project name, free loopback ports, its own log folder, the quick start's settings
(production mode and generated secrets: the test sets none), TLS with a certificate made here by
openssl, offline sample data, ``--scale serve=2``, no Grafana (it has no offline image). The jobs
data -> prepare -> train -> predict run to completion first. The stack and its volumes are
removed at the end of the session, also when a check or the start-up fails. Without an engine
the tests fail: they never skip. Tests using it run last (tests/conftest.py), so the stack does
not hold the machine while the other tests run.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.compose import COMPOSE_FILE, base_images, ensure_base_images, ensure_engine, run
from tests.utils.paths import shared_data

logger = logging.getLogger(__name__)

IMAGE_TAG = "e2e"
MODEL_NAME = "rakuten-multimodal"
EXPERIMENT = "rakuten-e2e"
PREDICT_LIMIT = 3  # per user and minute: small, to see the limit shared by the replicas
JOBS = ("data", "prepare", "train", "predict")
BUILT = ("mlflow", "data", "train", "predict", "serve", "monitor", "proxy")
STARTUP_S = 1500
SERVICES = (
    "secrets",
    "postgres",
    "db-roles",
    "redis",
    "mlflow",
    "init-logs",
    "data",
    "prepare",
    "train",
    "predict",
    "migrate",
    "serve",
    "proxy",
    "prometheus",
    "alertmanager",
    "pushgateway",
    "monitor",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A running stack and what the test set up for it."""

    project: str
    env_file: Path
    logs: Path
    cacert: Path
    ports: dict[str, int]
    secret_values: dict[str, str]
    services: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 300, input_text: str | None = None, check: bool = True
    ) -> str:
        base = ["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE)]
        result = run(
            [*base, "--env-file", str(self.env_file), *args],
            timeout=timeout,
            input_text=input_text,
            check=check,
        )
        return result.stdout + result.stderr

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, timeout=60).split()

    def inspect(self, container: str, template: str) -> str:
        return run(["docker", "inspect", "-f", template, container], timeout=60).stdout.strip()

    def https(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cacert))
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.ports['https']}", verify=context, timeout=60
        )

    def admin(self, name: str) -> httpx.Client:
        """A client of an admin UI, as the user it requires (each password is generated)."""
        users = {
            "mlflow": ("admin", "mlflow_admin_password"),
            "prometheus": ("prometheus", "prometheus_api_password"),
            "alertmanager": ("alertmanager", "alertmanager_api_password"),
        }
        user, secret = users[name]
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports[name]}",
            timeout=30,
            auth=(user, self.secret_values[secret]),
        )

    def network(self, name: str) -> str:
        return f"{self.project}_{name}"

    def with_env(self, name: str, **values: str) -> Stack:
        """The same stack read through a copy of its env file with ``values`` set.

        A later ``compose("up", "-d", "--no-deps", service)`` recreates ``service`` with them.
        """
        lines = [
            line
            for line in self.env_file.read_text().splitlines()
            if line.partition("=")[0] not in values
        ]
        lines += [f"{key}={value}" for key, value in values.items()]
        env_file = self.env_file.with_name(f"env-{name}")
        env_file.write_text("".join(line + "\n" for line in lines))
        return Stack(**{**self.__dict__, "env_file": env_file})


def _write_env(path: Path, *, logs: Path, tls_dir: Path | None, ports: dict[str, int]) -> None:
    # The quick start's settings as they are (no secret, production by default), plus what the
    # test needs to run beside other stacks and fast: ports, logs, small data, a small limit.
    lines = {
        "RAKUTEN_LOG_LEVEL": "INFO",
        "RAKUTEN_PREDICT_RATE_LIMIT": f"{PREDICT_LIMIT}/minute",
        "RAKUTEN_TOKEN_RATE_LIMIT": "30/minute",
        "STACK_DATA_SOURCE": "sample",
        "STACK_SAMPLE_TRAIN_ROWS": "600",
        "STACK_SAMPLE_TEST_ROWS": "40",
        "STACK_TRAIN_ARGS": "--set epochs=2",
        "STACK_MLFLOW_EXPERIMENT": EXPERIMENT,
        "STACK_MLFLOW_WORKERS": "1",
        # two replicas on 2 cores: one worker each (the default, one per core, suits one replica)
        "STACK_SERVE_WORKERS": "1",
        "STACK_HTTP_PORT": str(ports["http"]),
        "STACK_HTTPS_PORT": str(ports["https"]),
        "STACK_MLFLOW_PORT": str(ports["mlflow"]),
        "STACK_PROMETHEUS_PORT": str(ports["prometheus"]),
        "STACK_ALERTMANAGER_PORT": str(ports["alertmanager"]),
        "STACK_GRAFANA_PORT": str(ports["grafana"]),
        "STACK_LOGS_DIR": str(logs),
        "STACK_IMAGE_TAG": IMAGE_TAG,
    }
    if tls_dir is not None:
        lines["STACK_TLS_DIR"] = str(tls_dir)
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))


def self_signed(tls_dir: Path) -> Path:
    """A certificate and key for 127.0.0.1 in ``tls_dir`` (the proxy's uid can read the key)."""
    tls_dir.mkdir()
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(tls_dir / "tls.key"),
            "-out",
            str(tls_dir / "tls.crt"),
        ],
        timeout=60,
    )
    (tls_dir / "tls.key").chmod(0o644)  # read by nginx's master process (root) only in the box
    return tls_dir / "tls.crt"


def wait_healthy(stack: Stack, service: str, count: int, deadline: float) -> None:
    while True:
        ids = stack.container_ids(service)
        states = [stack.inspect(c, "{{.State.Health.Status}}") for c in ids]
        if len(ids) == count and all(s == "healthy" for s in states):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{service}: {states} after the start-up budget")
        time.sleep(3)


def start_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Build, start and yield the stack; always take it down with its volumes."""
    try:
        ensure_engine()
        ensure_base_images([tag for tag in base_images() if not tag.startswith("grafana/")])
    except Exception as exc:  # noqa: BLE001 - any failure to get an engine fails loudly
        pytest.fail(f"no Docker engine for the compose e2e: {exc}")
    root = tmp_path_factory.mktemp("compose")
    logs = root / "logs"
    logs.mkdir()
    cacert = self_signed(root / "tls")
    ports = {
        name: _free_port()
        for name in ("http", "https", "mlflow", "prometheus", "alertmanager", "grafana")
    }
    env_file = root / "env"
    _write_env(env_file, logs=logs, tls_dir=cacert.parent, ports=ports)
    stack = Stack(
        project=f"rakutene2e{secrets.token_hex(4)}",
        env_file=env_file,
        logs=logs,
        cacert=cacert,
        ports=ports,
        # passwords of the users the tests create; the generated secrets join them after `up`
        secret_values={"user": secrets.token_urlsafe(18), "user2": secrets.token_urlsafe(18)},
        services=list(SERVICES),
    )
    started = time.monotonic()
    try:
        stack.compose("build", *BUILT, timeout=2400)
        stack.timings["build_s"] = time.monotonic() - started
        up_started = time.monotonic()
        # `up` returns once every depends_on condition held: the jobs have completed by then
        # (or it failed, naming the job), and serve is started after them.
        stack.compose("up", "-d", "--scale", "serve=2", *stack.services, timeout=STARTUP_S)
        deadline = time.monotonic() + 300
        wait_healthy(stack, "serve", 2, deadline)
        wait_healthy(stack, "proxy", 1, deadline)
        stack.timings["up_s"] = time.monotonic() - up_started
        logger.info(
            "compose e2e: build %.0f s, up %.0f s", stack.timings["build_s"], stack.timings["up_s"]
        )
        listing = stack.compose(
            "run",
            "--rm",
            "--no-deps",
            "--entrypoint",
            "sh",
            "secrets",
            "-c",
            'for f in /secrets/store/*; do printf "%s=%s\\n" "${f##*/}" "$(cat "$f")"; done',
            timeout=120,
        )
        for line in listing.splitlines():
            name, sep, value = line.partition("=")
            if sep and value and name.isidentifier():
                stack.secret_values[name] = value
        yield stack
    except Exception as exc:
        tail = stack.compose("logs", "--no-color", "--tail=40", timeout=120, check=False)
        raise AssertionError(f"the stack did not come up: {exc}\n--- logs ---\n{tail}") from exc
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)
        logger.info("compose e2e: %.0f s in all", time.monotonic() - started)


def prometheus_query(stack: Stack, query: str) -> list[dict[str, Any]]:
    """The result of an instant query to the stack's Prometheus (as its user)."""
    with stack.admin("prometheus") as prometheus:
        response = prometheus.get("/api/v1/query", params={"query": query})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def token(client: httpx.Client, username: str, password: str) -> str:
    response = client.post("/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def create_user(stack: Stack, username: str, password: str, *scopes: str) -> None:
    scope_args = [arg for scope in scopes or ("predict",) for arg in ("-s", scope)]
    out = stack.compose(
        "exec",
        "-T",
        "serve",
        "rakuten-serve",
        "users",
        "create",
        username,
        *scope_args,
        "--password-stdin",
        input_text=password + "\n",
        timeout=120,
    )
    assert f"created {username}" in out


def predict(client: httpx.Client, bearer: str) -> httpx.Response:
    image = sorted(shared_data("images", "test").glob("*.jpg"))[0]
    return client.post(
        "/predict",
        headers={"Authorization": f"Bearer {bearer}"},
        data={
            "designation": "Piscine tubulaire ronde 3,66 x 0,76 m",
            "description": "Piscine hors sol avec pompe de filtration",
        },
        files={"image": (image.name, image.read_bytes(), "image/jpeg")},
    )


def psql(stack: Stack, query: str, *, role: str = "postgres", check: bool = True) -> str:
    """Run ``query`` in database rakuten as ``role``, through the local socket (trust)."""
    return stack.compose(
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        role,
        "-d",
        "rakuten",
        "-tA",
        "-c",
        query,
        timeout=60,
        check=check,
    ).strip()
