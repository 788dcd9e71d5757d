"""The whole platform under ``docker-compose``, on a real Docker engine (e2e, slow).

One stack per module (a unique project name, free loopback ports, its own log folder, random
secrets, production settings, TLS with a certificate made here by openssl, offline sample data,
``--scale serve=2``, no Grafana: it has no offline image). The jobs data -> prepare -> train ->
predict run to completion, then every check goes through the proxy's published port or the
admin UIs published on loopback. The stack and its volumes are removed at the end, also when a
check or the start-up fails. Without an engine the module fails: it never skips.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.utils.compose import (
    COMPOSE_FILE,
    base_images,
    ensure_base_images,
    ensure_engine,
    run,
)
from tests.utils.paths import shared_data

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2700)]
logger = logging.getLogger(__name__)

IMAGE_TAG = "e2e"
MODEL_NAME = "rakuten-multimodal"
EXPERIMENT = "rakuten-e2e"
PREDICT_LIMIT = 3  # per user and minute: small, to see the limit shared by the replicas
JOBS = ("data", "prepare", "train", "predict")
BUILT = ("mlflow", "data", "train", "predict", "serve", "monitor", "proxy")
STARTUP_S = 1500


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
        out = run(
            [
                "docker-compose",
                "-p",
                self.project,
                "-f",
                str(COMPOSE_FILE),
                "--env-file",
                str(self.env_file),
                "ps",
                "-q",
                service,
            ],
            timeout=60,
        ).stdout
        return out.split()

    def inspect(self, container: str, template: str) -> str:
        return run(["docker", "inspect", "-f", template, container], timeout=60).stdout.strip()

    def https(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cacert))
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.ports['https']}", verify=context, timeout=60
        )

    def admin(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.ports[name]}", timeout=30)


def _write_env(
    path: Path,
    *,
    logs: Path,
    tls_dir: Path | None,
    ports: dict[str, int],
    secret_values: dict[str, str],
) -> None:
    lines = {
        "RAKUTEN_ENVIRONMENT": "production",
        "RAKUTEN_LOG_LEVEL": "INFO",
        "RAKUTEN_JWT_SECRET": secret_values["jwt"],
        "RAKUTEN_PREDICT_RATE_LIMIT": f"{PREDICT_LIMIT}/minute",
        "RAKUTEN_TOKEN_RATE_LIMIT": "30/minute",
        "STACK_POSTGRES_PASSWORD": secret_values["postgres"],
        "STACK_GRAFANA_ADMIN_PASSWORD": secret_values["grafana"],
        # required by the file even though Airflow (profile orchestration) is not started here
        "STACK_AIRFLOW_ADMIN_PASSWORD": secret_values["airflow_admin"],
        "STACK_AIRFLOW_SECRET_KEY": secret_values["airflow_secret_key"],
        "STACK_DATA_SOURCE": "sample",
        "STACK_SAMPLE_TRAIN_ROWS": "600",
        "STACK_SAMPLE_TEST_ROWS": "40",
        "STACK_TRAIN_ARGS": "--set epochs=2",
        "STACK_MLFLOW_EXPERIMENT": EXPERIMENT,
        "STACK_MLFLOW_WORKERS": "1",
        "STACK_BIND_ADDRESS": "127.0.0.1",
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


def _self_signed(tls_dir: Path) -> Path:
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


def _wait_healthy(stack: Stack, service: str, count: int, deadline: float) -> None:
    while True:
        ids = stack.container_ids(service)
        states = [stack.inspect(c, "{{.State.Health.Status}}") for c in ids]
        if len(ids) == count and all(s == "healthy" for s in states):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{service}: {states} after the start-up budget")
        time.sleep(3)


def _job_exit_code(stack: Stack, job: str) -> int:
    (container,) = stack.container_ids(job)
    return int(stack.inspect(container, "{{.State.ExitCode}}"))


def _services() -> list[str]:
    names = [
        "postgres",
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
    ]
    return names


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        ensure_engine()
        ensure_base_images([tag for tag in base_images() if not tag.startswith("grafana/")])
    except Exception as exc:  # noqa: BLE001 - any failure to get an engine fails loudly
        pytest.fail(f"no Docker engine for the compose e2e: {exc}")
    root = tmp_path_factory.mktemp("compose")
    logs = root / "logs"
    logs.mkdir()
    cacert = _self_signed(root / "tls")
    ports = {
        name: _free_port()
        for name in ("http", "https", "mlflow", "prometheus", "alertmanager", "grafana")
    }
    secret_values = {
        "jwt": secrets.token_urlsafe(48),
        "postgres": secrets.token_hex(16),
        "grafana": secrets.token_hex(12),
        "user": secrets.token_urlsafe(18),
        "user2": secrets.token_urlsafe(18),
        "airflow_admin": secrets.token_urlsafe(18),
        "airflow_secret_key": secrets.token_urlsafe(32),
    }
    env_file = root / "env"
    _write_env(env_file, logs=logs, tls_dir=cacert.parent, ports=ports, secret_values=secret_values)
    stack = Stack(
        project=f"rakutene2e{secrets.token_hex(4)}",
        env_file=env_file,
        logs=logs,
        cacert=cacert,
        ports=ports,
        secret_values=secret_values,
        services=_services(),
    )
    started = time.monotonic()
    try:
        stack.compose("build", *[s for s in BUILT if s in stack.services], timeout=2400)
        stack.timings["build_s"] = time.monotonic() - started
        up_started = time.monotonic()
        # `up` returns once every depends_on condition held: the jobs have completed by then
        # (or it failed, naming the job), and serve is started after them.
        stack.compose("up", "-d", "--scale", "serve=2", *stack.services, timeout=STARTUP_S)
        deadline = time.monotonic() + 300
        _wait_healthy(stack, "serve", 2, deadline)
        _wait_healthy(stack, "proxy", 1, deadline)
        stack.timings["up_s"] = time.monotonic() - up_started
        logger.info(
            "compose e2e: build %.0f s, up %.0f s", stack.timings["build_s"], stack.timings["up_s"]
        )
        yield stack
    except Exception as exc:
        tail = stack.compose("logs", "--no-color", "--tail=40", timeout=120, check=False)
        raise AssertionError(f"the stack did not come up: {exc}\n--- logs ---\n{tail}") from exc
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)
        logger.info("compose e2e: %.0f s in all", time.monotonic() - started)


def _token(client: httpx.Client, username: str, password: str) -> str:
    response = client.post("/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _create_user(stack: Stack, username: str, password: str) -> None:
    out = stack.compose(
        "exec",
        "-T",
        "serve",
        "rakuten-serve",
        "users",
        "create",
        username,
        "-s",
        "predict",
        "--password-stdin",
        input_text=password + "\n",
        timeout=120,
    )
    assert f"created {username}" in out


def _predict(client: httpx.Client, token: str) -> httpx.Response:
    image = sorted(shared_data("images", "test").glob("*.jpg"))[0]
    return client.post(
        "/predict",
        headers={"Authorization": f"Bearer {token}"},
        data={
            "designation": "Piscine tubulaire ronde 3,66 x 0,76 m",
            "description": "Piscine hors sol avec pompe de filtration",
        },
        files={"image": (image.name, image.read_bytes(), "image/jpeg")},
    )


def _psql(stack: Stack, query: str) -> str:
    return stack.compose(
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "rakuten",
        "-d",
        "rakuten",
        "-tA",
        "-c",
        query,
        timeout=60,
    ).strip()


def test_jobs_completed_and_two_replicas_serve(stack: Stack) -> None:
    for job in JOBS:
        assert _job_exit_code(stack, job) == 0, job
    assert len(stack.container_ids("serve")) == 2


def test_data_image_has_no_tensorflow_and_images_carry_no_build_tools(stack: Stack) -> None:
    probe = (
        "import importlib.util as u, pathlib as p, shutil as s; "
        "print(u.find_spec('tensorflow') is not None, s.which('uv') is not None, "
        "p.Path('/root/.cache/uv').exists(), p.Path('/app/tests').exists(), "
        "p.Path('/src').exists())"
    )
    for service in ("data", "train", "serve"):
        image = f"rakuten-{service}:{IMAGE_TAG}"
        out = run(
            ["docker", "run", "--rm", "--user", "0", "--entrypoint", "python", image, "-c", probe],
            timeout=120,
        ).stdout.split()
        has_tf, has_uv, uv_cache, tests_dir, sources = out
        assert has_tf == ("False" if service == "data" else "True"), service
        assert (has_uv, uv_cache, tests_dir, sources) == ("False",) * 4, service
        user = run(
            ["docker", "image", "inspect", "-f", "{{.Config.User}}", image], timeout=60
        ).stdout.strip()
        assert user not in ("", "root", "0"), f"{image} runs as root"


def test_proxy_keeps_metrics_and_admin_routes_internal(stack: Stack) -> None:
    with stack.https() as client:
        assert client.get("/health/live").status_code == 200
        # raw paths: sent byte for byte, as a client probing the proxy would
        for raw in (
            "/metrics",
            "//metrics",
            "/%6Detrics",
            "/metrics/",
            "/metrics?x=1",
            "/admin/reload",
            "/admin",
            "/./admin/reload",
            "/nothing-here",
        ):
            url = client.base_url.copy_with(raw_path=raw.encode())
            assert client.get(url).status_code == 404, raw
        assert client.post("/admin/reload").status_code == 404
        assert client.get("/metrics").headers["content-type"].startswith("application/json")
    # plain HTTP only redirects once a certificate is configured
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['http']}", timeout=30) as plain:
        response = plain.get("/health/live")
        assert response.status_code == 301
        assert response.headers["location"].startswith("https://")


def test_prediction_through_the_proxy_is_recorded_in_postgres(stack: Stack) -> None:
    _create_user(stack, "e2e", stack.secret_values["user"])
    with stack.https() as client:
        token = _token(client, "e2e", stack.secret_values["user"])
        response = _predict(client, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body["prdtypecode"], int)
        assert body["model_version"]
        assert client.post("/predict", data={"designation": "x"}).status_code == 401
    request_id = body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    deadline = time.monotonic() + 60
    while True:  # the recorder writes behind the response
        row = _psql(stack, f"SELECT prdtypecode FROM predictions WHERE request_id = '{request_id}'")
        if row or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert row == str(body["prdtypecode"])


def test_replicas_share_rate_limits_and_the_proxy_spreads_requests(stack: Stack) -> None:
    _create_user(stack, "e2e-limits", stack.secret_values["user2"])
    with stack.https() as client:
        for _ in range(30):
            assert client.get("/health/live").status_code == 200
        token = _token(client, "e2e-limits", stack.secret_values["user2"])
        statuses = [_predict(client, token).status_code for _ in range(8)]
    # Redis holds the counters: the replicas together allow PREDICT_LIMIT, not one each.
    assert statuses.count(200) == PREDICT_LIMIT, statuses
    assert set(statuses) == {200, 429}, statuses
    replicas = {
        stack.inspect(c, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}") + ":8000"
        for c in stack.container_ids("serve")
    }
    lines = (stack.logs / "proxy.log").read_text().splitlines()
    upstreams = {
        m
        for line in lines
        if '"GET /health/live" 200 ' in line
        for m in re.findall(r"upstream=(\S+)", line)
    }
    assert upstreams == replicas


def test_run_is_in_the_named_experiment_and_the_champion_serves(stack: Stack) -> None:
    with stack.admin("mlflow") as mlflow:
        experiment = mlflow.get(
            "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT}
        )
        assert experiment.status_code == 200, experiment.text
        experiment_id = experiment.json()["experiment"]["experiment_id"]
        champion = mlflow.get(
            "/api/2.0/mlflow/registered-models/alias",
            params={"name": MODEL_NAME, "alias": "champion"},
        )
        assert champion.status_code == 200, champion.text
        version = champion.json()["model_version"]
        run_info = mlflow.get("/api/2.0/mlflow/runs/get", params={"run_id": version["run_id"]})
        assert run_info.json()["run"]["info"]["experiment_id"] == experiment_id
    with stack.https() as client:
        served = client.get("/model").json()
    assert served["mlflow_run_id"] == version["run_id"]
    assert served["source"] == f"models:/{MODEL_NAME}@champion"


def _prometheus(stack: Stack, query: str) -> list[dict[str, object]]:
    with stack.admin("prometheus") as prometheus:
        response = prometheus.get("/api/v1/query", params={"query": query})
    assert response.status_code == 200, response.text
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def test_prometheus_scrapes_every_serve_replica(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    while True:
        up = _prometheus(stack, 'up{job="serve"} == 1')
        if len(up) == 2 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert len(up) == 2, up


def test_prometheus_scrapes_the_monitor_and_loads_the_rules(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    while True:
        jobs = {
            str(series["metric"]["job"])  # type: ignore[index]
            for series in _prometheus(stack, "up == 1")
        }
        if {"monitor", "pushgateway", "alertmanager", "prometheus"} <= jobs:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(5)
    with stack.admin("prometheus") as prometheus:
        groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert {"RakutenApiDown", "RakutenDriftAboveThreshold"} <= alerts, alerts


def test_pushgateway_holds_the_jobs_figures(stack: Stack) -> None:
    deadline = time.monotonic() + 90
    while True:
        jobs = {
            str(series["metric"]["job"])  # type: ignore[index]
            for series in _prometheus(stack, "rakuten_job_last_success_timestamp_seconds")
        }
        if {"rakuten_train", "rakuten_predict"} <= jobs or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert {"rakuten_train", "rakuten_predict"} <= jobs
    assert _prometheus(stack, 'rakuten_job_weighted_f1{job="rakuten_train"} > 0')


def test_each_service_writes_its_log_file(stack: Stack) -> None:
    expected = {"data.log", "train.log", "predict.log", "serve.log", "proxy.log"}
    if "monitor" in stack.services:
        expected.add("monitor.log")
    present = {p.name for p in stack.logs.iterdir() if p.is_file() and p.stat().st_size > 0}
    assert expected <= present, present


def test_no_secret_in_logs_or_image_history(stack: Stack) -> None:
    texts = [stack.compose("logs", "--no-color", timeout=180)]
    texts += [p.read_text(errors="replace") for p in stack.logs.rglob("*") if p.is_file()]
    for service in BUILT:
        if service in stack.services:
            texts.append(
                run(
                    ["docker", "history", "--no-trunc", f"rakuten-{service}:{IMAGE_TAG}"],
                    timeout=60,
                ).stdout
            )
    everything = "\n".join(texts)
    assert "serve" in everything  # the logs were really read
    for name, value in stack.secret_values.items():
        assert value not in everything, f"the {name} secret leaked"


def test_proxy_serves_plain_http_without_a_certificate(stack: Stack) -> None:
    plain_env = stack.env_file.with_name("env-plain")
    plain_env.write_text(
        "".join(
            line + "\n"
            for line in stack.env_file.read_text().splitlines()
            if not line.startswith("STACK_TLS_DIR=")
        )
    )
    plain = Stack(**{**stack.__dict__, "env_file": plain_env})
    plain.compose("up", "-d", "--no-deps", "proxy", timeout=300)
    _wait_healthy(plain, "proxy", 1, time.monotonic() + 120)
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['http']}", timeout=30) as client:
        assert client.get("/health/ready").status_code == 200
        assert client.get("/metrics").status_code == 404
        assert "text/html" in client.get("/").headers["content-type"]
