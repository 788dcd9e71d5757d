"""The whole platform under ``docker-compose``, on a real Docker engine (e2e, slow).

The session's stack (tests/utils/compose_stack.py, shared with the attack suite in
tests/security): the quick start's settings (generated secrets, production mode), TLS, offline
sample data, two serve replicas. Every check goes through the proxy's published port or the
admin UIs published on loopback.
"""

from __future__ import annotations

import logging
import re
import time

import httpx
import pytest

from tests.utils.compose import run
from tests.utils.compose_stack import (
    BUILT,
    EXPERIMENT,
    IMAGE_TAG,
    JOBS,
    MODEL_NAME,
    PREDICT_LIMIT,
    Stack,
    create_user,
    predict,
    prometheus_query,
    psql,
    token,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2700)]
logger = logging.getLogger(__name__)


@pytest.fixture
def stack(compose_stack: Stack) -> Stack:
    return compose_stack


def _job_exit_code(stack: Stack, job: str) -> int:
    (container,) = stack.container_ids(job)
    return int(stack.inspect(container, "{{.State.ExitCode}}"))


def test_jobs_completed_and_two_replicas_serve(stack: Stack) -> None:
    for job in JOBS:
        assert _job_exit_code(stack, job) == 0, job
    assert len(stack.container_ids("serve")) == 2


def test_only_the_train_image_has_tensorflow_and_images_carry_no_build_tools(
    stack: Stack,
) -> None:
    """One Dockerfile, five images: each has its package's dependencies only (TensorFlow,
    scikit-learn and SciPy in train's alone), and none keeps uv, its cache, the sources or the
    tests."""
    probe = (
        "import importlib.util as u, pathlib as p, shutil as s; "
        "print(*[u.find_spec(m) is not None for m in ('tensorflow', 'sklearn', 'scipy')], "
        "s.which('uv') is not None, p.Path('/root/.cache/uv').exists(), "
        "p.Path('/app/tests').exists(), p.Path('/src').exists())"
    )
    expected = {  # (tensorflow, scikit-learn, scipy)
        "data": ("False", "False", "False"),
        "train": ("True", "True", "True"),
        "predict": ("False", "False", "False"),
        "serve": ("False", "False", "False"),
        "monitor": ("False", "False", "False"),
    }
    for service, packages in expected.items():
        image = f"rakuten-{service}:{IMAGE_TAG}"
        out = run(
            ["docker", "run", "--rm", "--user", "0", "--entrypoint", "python", image, "-c", probe],
            timeout=120,
        ).stdout.split()
        assert tuple(out[:3]) == packages, service
        assert tuple(out[3:]) == ("False",) * 4, service
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
        # to the port HTTPS is published on, not the container's 443
        expected = f"https://127.0.0.1:{stack.ports['https']}/health/live"
        assert response.headers["location"] == expected


def test_prediction_through_the_proxy_is_recorded_in_postgres(stack: Stack) -> None:
    create_user(stack, "e2e", stack.secret_values["user"])
    with stack.https() as client:
        bearer = token(client, "e2e", stack.secret_values["user"])
        response = predict(client, bearer)
        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body["prdtypecode"], int)
        assert body["model_version"]
        assert client.post("/predict", data={"designation": "x"}).status_code == 401
    request_id = body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    deadline = time.monotonic() + 60
    while True:  # the recorder writes behind the response
        row = psql(stack, f"SELECT prdtypecode FROM predictions WHERE request_id = '{request_id}'")
        if row or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert row == str(body["prdtypecode"])


def test_replicas_share_rate_limits_and_the_proxy_spreads_requests(stack: Stack) -> None:
    create_user(stack, "e2e-limits", stack.secret_values["user2"])
    with stack.https() as client:
        for _ in range(30):
            assert client.get("/health/live").status_code == 200
        bearer = token(client, "e2e-limits", stack.secret_values["user2"])
        statuses = [predict(client, bearer).status_code for _ in range(8)]
    # Redis holds the counters: the replicas together allow PREDICT_LIMIT, not one each.
    assert statuses.count(200) == PREDICT_LIMIT, statuses
    assert set(statuses) == {200, 429}, statuses
    edge = stack.network("edge")  # the proxy reaches the replicas on that network only
    replicas = {
        stack.inspect(c, f'{{{{(index .NetworkSettings.Networks "{edge}").IPAddress}}}}') + ":8000"
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


def test_prometheus_scrapes_every_serve_replica(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    while True:
        up = prometheus_query(stack, 'up{job="serve"} == 1')
        if len(up) == 2 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert len(up) == 2, up


def test_prometheus_scrapes_the_monitor_and_loads_the_rules(stack: Stack) -> None:
    deadline = time.monotonic() + 120
    while True:
        jobs = {
            str(series["metric"]["job"])  # type: ignore[index]
            for series in prometheus_query(stack, "up == 1")
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
            for series in prometheus_query(stack, "rakuten_job_last_success_timestamp_seconds")
        }
        if {"rakuten_train", "rakuten_predict"} <= jobs or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert {"rakuten_train", "rakuten_predict"} <= jobs
    assert prometheus_query(stack, 'rakuten_job_weighted_f1{job="rakuten_train"} > 0')


def test_the_watchdog_reaches_the_monitor_through_prometheus_and_alertmanager(stack: Stack) -> None:
    """The whole alert path of the quick start: a rule Prometheus evaluates, Alertmanager routes
    to the dead man's switch receiver, which posts to the monitor with its generated token."""
    probe = (
        "import json, urllib.request as u; "
        "print(json.load(u.urlopen('http://127.0.0.1:9108/health', timeout=10))['last_heartbeat'])"
    )
    deadline = time.monotonic() + 180
    while True:
        heartbeat = stack.compose("exec", "-T", "monitor", "python", "-c", probe, timeout=60)
        if heartbeat.strip().splitlines()[-1] not in ("None", ""):
            break
        assert time.monotonic() < deadline, f"no heartbeat from Alertmanager: {heartbeat}"
        time.sleep(10)
    assert float(heartbeat.strip().splitlines()[-1]) > 0
    with stack.admin("alertmanager") as alertmanager:
        alerts = alertmanager.get("/api/v2/alerts").json()
    receivers = {a["labels"]["alertname"]: [r["name"] for r in a["receivers"]] for a in alerts}
    assert receivers.get("RakutenWatchdog") == ["deadmansswitch"], receivers
    logger.info("alerts firing on the stack, with their receivers: %s", receivers)


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
    try:
        wait_healthy(plain, "proxy", 1, time.monotonic() + 120)
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['http']}", timeout=30) as client:
            assert client.get("/health/ready").status_code == 200
            assert client.get("/metrics").status_code == 404
            assert "text/html" in client.get("/").headers["content-type"]
    finally:  # the attack suite runs on the same stack, over TLS
        stack.compose("up", "-d", "--no-deps", "proxy", timeout=300)
        wait_healthy(stack, "proxy", 1, time.monotonic() + 120)
