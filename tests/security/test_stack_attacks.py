"""Attacks on the compose stack as the quick start runs it (real engine, slow; docs/security.md).

The session's stack (tests/utils/compose_stack.py) is started with the quick start's settings:
no secret is given, so the stack runs on the secrets it generated. Each test is an attack with
the answer the stack must give: a token signed with any value the repository publishes, the
proxy reaching the databases, a container with more than it needs, a database role writing
what it should only read, Redis without its password, a label from a user who may only
predict, a drift figure pushed to the Pushgateway as if it came from the monitor.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jose import jwt

from tests.utils.compose import run
from tests.utils.compose_stack import (
    IMAGE_TAG,
    MODEL_NAME,
    Stack,
    create_user,
    predict,
    prometheus_query,
    psql,
    token,
)
from tests.utils.paths import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2700)]

# Values the repository published as secrets before the stack generated its own (the old
# .env.example): their digests stay in rakuten_core's published list.
FORMERLY_PUBLISHED = (
    "example-only-jwt-secret-replace-before-production",
    "example-only-postgres-password",
    "example-only-grafana-password",
    "example-airflow-admin-password",
    "example-only-airflow-secret-key-replace-me",
)
# What each container may keep: capabilities added back (the reason is in docker-compose.yml)
# and the user it runs as (root only where the image's entrypoint must switch user itself).
ALLOWED_CAPS = {
    "secrets": {"CHOWN"},
    "init-logs": {"CHOWN"},
    "postgres": {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"},
}
ROOT_ALLOWED = {"secrets", "init-logs", "postgres", "db-roles"}
# the offline stand-ins of these images have no USER (the official ones run as nobody)
ROOT_IN_STAND_IN = {"prometheus", "alertmanager", "pushgateway"}


def _published_values() -> set[str]:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import published_secrets  # noqa: PLC0415 - the project's script, found on its path
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    return published_secrets.published_values(REPO_ROOT) | set(FORMERLY_PUBLISHED)


def _forge(key: str, subject: str, scopes: list[str]) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "scopes": scopes,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=10)).timestamp()),
    }
    return str(jwt.encode(claims, key, algorithm="HS256"))


def test_a_token_signed_with_any_published_value_is_refused(compose_stack: Stack) -> None:
    stack = compose_stack
    password = secrets.token_urlsafe(18)
    create_user(stack, "attack-target", password, "predict", "admin")
    values = _published_values()
    assert len(values) >= 10  # the scan really found the repository's values
    with stack.https() as client:
        # the control: the same forging code with the stack's real key is accepted
        real = _forge(stack.secret_values["jwt_secret"], "attack-target", ["predict"])
        assert predict(client, real).status_code == 200
        for value in sorted(values):
            forged = _forge(value, "attack-target", ["predict", "admin"])
            response = predict(client, forged)
            assert response.status_code == 401, (value[:4], response.status_code)
    assert stack.secret_values["jwt_secret"] not in values


def test_no_published_value_is_a_password_of_postgres_or_redis(compose_stack: Stack) -> None:
    stack = compose_stack
    candidates = [*FORMERLY_PUBLISHED, "rakuten", "postgres"]
    probe = (
        "import os, sys, psycopg\n"
        "for pw in sys.stdin.read().split():\n"
        "    for user in ('postgres', 'rakuten', 'rakuten_serve', 'rakuten_owner'):\n"
        "        try:\n"
        "            psycopg.connect(host='postgres', dbname='postgres', user=user, password=pw,\n"
        "                            connect_timeout=5, passfile='/dev/null').close()\n"
        "            print('ACCEPTED', user)\n"
        "        except psycopg.OperationalError:\n"
        "            pass\n"
        "import redis\n"
        "try:\n"
        "    redis.Redis(host='redis', socket_timeout=5).ping()\n"
        "    print('REDIS OPEN')\n"
        "except redis.AuthenticationError:\n"
        "    print('REDIS NEEDS A PASSWORD')\n"
    )
    out = stack.compose(
        "exec", "-T", "serve", "python", "-c", probe, input_text="\n".join(candidates)
    )
    assert "ACCEPTED" not in out and "REDIS OPEN" not in out, out
    assert "REDIS NEEDS A PASSWORD" in out, out


def test_the_proxy_cannot_reach_postgres_or_redis(compose_stack: Stack) -> None:
    stack = compose_stack
    (proxy,) = stack.container_ids("proxy")
    addresses = {
        service: stack.inspect(
            stack.container_ids(service)[0],
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        ).split()
        for service in ("postgres", "redis", "mlflow")
    }
    targets = [("postgres", 5432), ("redis", 6379), ("mlflow", 5000)]
    targets += [(ip, port) for (name, port) in targets for ip in addresses[name]]
    for host, port in targets:
        result = run(
            [
                "docker",
                "exec",
                proxy,
                "timeout",
                "5",
                "bash",
                "-c",
                f"exec 3<>/dev/tcp/{host}/{port}",
            ],
            timeout=60,
            check=False,
        )
        assert result.returncode != 0, f"the proxy opened {host}:{port}"
    # the control: the proxy does reach serve
    reach = run(
        ["docker", "exec", proxy, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/serve/8000"],
        timeout=60,
        check=False,
    )
    assert reach.returncode == 0, reach.stderr


def _inspect_all(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    ids = run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
        timeout=60,
    ).stdout.split()
    # `compose run` leaves nothing behind (--rm); every container here is a service's
    details = json.loads(run(["docker", "inspect", *ids], timeout=60).stdout)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for container in details:
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        by_service.setdefault(service, []).append(container)
    return by_service


def test_every_container_runs_with_least_privilege(compose_stack: Stack) -> None:
    by_service = _inspect_all(compose_stack)
    assert set(compose_stack.services) <= set(by_service), sorted(by_service)
    for service, containers in by_service.items():
        for container in containers:
            host = container["HostConfig"]
            assert [c.upper() for c in host["CapDrop"] or []] == ["ALL"], service
            added = {c.upper().removeprefix("CAP_") for c in host["CapAdd"] or []}
            assert added <= ALLOWED_CAPS.get(service, set()), (service, added)
            assert "no-new-privileges:true" in (host["SecurityOpt"] or []), service
            assert host["ReadonlyRootfs"] is True, service
            assert host["Memory"] > 0, service
            assert host["PidsLimit"] and host["PidsLimit"] > 0, service
            assert not host["Privileged"], service
            user = container["Config"]["User"] or "root"
            if service not in ROOT_ALLOWED | ROOT_IN_STAND_IN:
                assert user.split(":")[0] not in ("", "0", "root"), f"{service} runs as root"
            networks = set(container["NetworkSettings"]["Networks"])
            assert not any(name.endswith("_default") for name in networks), service
            if service == "proxy":
                assert networks == {compose_stack.network("edge")}
            if service in ("postgres", "redis"):
                assert networks == {compose_stack.network("db")}


def test_database_roles_hold_only_what_their_service_needs(compose_stack: Stack) -> None:
    stack = compose_stack
    assert psql(stack, "SELECT count(*) >= 0 FROM predictions", role="rakuten_monitor") == "t"
    for statement in (
        "INSERT INTO feedback (request_id) VALUES ('x')",
        "DELETE FROM users",
        "CREATE TABLE intruder (id int)",
    ):
        out = psql(stack, statement, role="rakuten_monitor", check=False)
        assert "permission denied" in out, (statement, out)
    for statement in ("CREATE TABLE intruder (id int)", "DROP TABLE users"):
        out = psql(stack, statement, role="rakuten_serve", check=False)
        assert "permission denied" in out or "must be owner" in out, (statement, out)
    superusers = psql(stack, "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolsuper")
    assert superusers == "postgres"
    # and the services really connect as their roles
    sessions = psql(
        stack,
        "SELECT string_agg(DISTINCT usename, ',' ORDER BY usename) FROM pg_stat_activity "
        "WHERE datname = 'rakuten' AND usename <> 'postgres'",
    )
    assert set(sessions.split(",")) <= {"rakuten_serve", "rakuten_monitor"}, sessions


def test_a_user_who_may_only_predict_cannot_label(compose_stack: Stack) -> None:
    stack = compose_stack
    password = secrets.token_urlsafe(18)
    create_user(stack, "attack-predict-only", password, "predict")
    with stack.https() as client:
        bearer = token(client, "attack-predict-only", password)
        answered = predict(client, bearer)
        assert answered.status_code == 200, answered.text
        response = client.post(
            "/feedback",
            headers={"Authorization": f"Bearer {bearer}"},
            json={"request_id": answered.json()["request_id"], "prdtypecode": 10},
        )
    assert response.status_code == 403, response.text
    rows = psql(stack, "SELECT count(*) FROM feedback WHERE username = 'attack-predict-only'")
    assert rows == "0"


def _push_from_inside(stack: Stack, job: str, body: str, user: str | None) -> int:
    """HTTP status of a push to the Pushgateway from a container on the backend network."""
    secret = stack.secret_values["pushgateway_api_password"] if user else ""
    script = (
        "import base64, sys, urllib.error, urllib.request\n"
        "user, secret, body = sys.stdin.read().split('\\n', 2)\n"
        f"request = urllib.request.Request('http://pushgateway:9091/metrics/job/{job}',"
        " data=body.encode(), method='PUT')\n"
        "if user:\n"
        "    token = base64.b64encode(f'{user}:{secret}'.encode()).decode()\n"
        "    request.add_header('Authorization', 'Basic ' + token)\n"
        "try:\n"
        "    print(urllib.request.urlopen(request, timeout=10).status)\n"
        "except urllib.error.HTTPError as error:\n"
        "    print(error.code)\n"
    )
    out = run(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            stack.network("backend"),
            "--entrypoint",
            "python",
            f"rakuten-data:{IMAGE_TAG}",
            "-c",
            script,
        ],
        timeout=120,
        input_text=f"{user or ''}\n{secret}\n{body}",
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_a_drift_figure_pushed_as_the_monitor_never_reaches_the_rules(
    compose_stack: Stack,
) -> None:
    stack = compose_stack
    body = 'rakuten_drift_score{feature="text_length"} 9\n'
    # without the Pushgateway's user: refused at the door
    assert _push_from_inside(stack, "monitor", body, user=None) == 401
    # with it (a compromised batch job holds it): accepted by the gateway, dropped by Prometheus
    pushed_at = time.time()
    for job in ("monitor", "rakuten_train"):
        assert _push_from_inside(stack, job, body, user="pushgateway") == 200
    # wait for a scrape of the gateway after the pushes: the batch job's own push time (kept by
    # the allow-list) shows it; the same scrape carried the forged series
    deadline = time.monotonic() + 90
    scraped = f'push_time_seconds{{job="rakuten_train"}} > {pushed_at - 5:.0f}'
    while not prometheus_query(stack, scraped):
        assert time.monotonic() < deadline, "Prometheus never scraped the gateway after the push"
        time.sleep(2)
    time.sleep(1)  # and one rule evaluation
    assert not prometheus_query(stack, 'rakuten_drift_score{feature="text_length"} == 9')
    assert not prometheus_query(stack, 'rakuten_drift_score{instance=""}')  # pushed series
    with stack.admin("prometheus") as prometheus:
        alerts = prometheus.get("/api/v1/alerts").json()["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"] == "RakutenDriftAboveThreshold"]


def test_prometheus_alertmanager_and_the_pushgateway_require_their_user(
    compose_stack: Stack,
) -> None:
    stack = compose_stack
    fake = [{"labels": {"alertname": "RakutenDriftAboveThreshold", "severity": "warning"}}]
    for name, path in (("prometheus", "/api/v1/alerts"), ("alertmanager", "/api/v2/alerts")):
        base = f"http://127.0.0.1:{stack.ports[name]}"
        with httpx.Client(base_url=base, timeout=30) as anonymous:
            assert anonymous.get(path).status_code == 401, name
        wrong = (name, "example-only-grafana-password")
        with httpx.Client(base_url=base, timeout=30, auth=wrong) as guess:
            assert guess.get(path).status_code == 401, name
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.ports['alertmanager']}", timeout=30
    ) as anonymous:
        assert anonymous.post("/api/v2/alerts", json=fake).status_code == 401
    with stack.admin("alertmanager") as alertmanager:
        alerts = alertmanager.get("/api/v2/alerts").json()
    assert not [a for a in alerts if a["labels"]["alertname"] == "RakutenDriftAboveThreshold"]
    # Prometheus itself reaches all three with their users: every target up
    up = prometheus_query(stack, 'up{job=~"pushgateway|alertmanager|prometheus"} == 1')
    assert {s["metric"]["job"] for s in up} == {"pushgateway", "alertmanager", "prometheus"}


def test_the_quick_start_publishes_only_on_loopback(compose_stack: Stack) -> None:
    by_service = _inspect_all(compose_stack)
    for service, containers in by_service.items():
        for container in containers:
            for bindings in (container["HostConfig"]["PortBindings"] or {}).values():
                for binding in bindings or []:
                    assert binding["HostIp"] == "127.0.0.1", (service, binding)
    with httpx.Client(timeout=10) as client:
        assert client.get(f"http://127.0.0.1:{compose_stack.ports['http']}/").status_code in (
            200,
            301,
        )


def _proxy_log_lines(stack: Stack, marker: str) -> list[str]:
    return [line for line in (stack.logs / "proxy.log").read_text().splitlines() if marker in line]


def test_the_proxy_refuses_a_request_without_a_bearer_before_serve_reads_it(
    compose_stack: Stack,
) -> None:
    stack = compose_stack
    body = b"x" * (4 * 1024 * 1024)
    with stack.https() as client:
        for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic x"}):
            response = client.post(
                "/predict",
                headers={**headers, "Content-Type": "application/octet-stream"},
                content=body,
            )
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    # nginx answered them itself: no upstream in the proxy's access log lines
    refused = _proxy_log_lines(stack, '"POST /predict" 401')
    assert len([line for line in refused if "upstream=- " in line]) >= 3, refused[-5:]


def test_a_service_account_cannot_log_in_or_be_locked_out_through_the_proxy(
    compose_stack: Stack,
) -> None:
    stack = compose_stack
    password = secrets.token_urlsafe(18)
    create_user(stack, "retrain-bot", password, "admin")
    with stack.https() as client:
        for attempt in ("guess-one", "guess-two", password):
            refused = client.post("/token", data={"username": "retrain-bot", "password": attempt})
            assert refused.status_code == 401, refused.text
    # from inside the stack (no proxy) the account still logs in: nothing was locked
    probe = (
        "import sys, urllib.parse, urllib.request\n"
        "data = urllib.parse.urlencode({'username': 'retrain-bot',"
        " 'password': sys.stdin.read().strip()}).encode()\n"
        "print(urllib.request.urlopen('http://127.0.0.1:8000/token', data, timeout=30).status)\n"
    )
    out = stack.compose("exec", "-T", "serve", "python", "-c", probe, input_text=password)
    assert out.strip().splitlines()[-1] == "200", out


def test_the_proxy_limits_logins_per_client_address(compose_stack: Stack) -> None:
    """Last of the suite: it spends this address's /token allowance for the next minute."""
    stack = compose_stack
    with stack.https() as client:
        statuses = [
            client.post("/token", data={"username": "nobody", "password": "not-it"}).status_code
            for _ in range(40)
        ]
    assert 429 in statuses, statuses
    by_proxy = [
        line for line in _proxy_log_lines(stack, '"POST /token" 429') if "upstream=- " in line
    ]
    assert by_proxy, "the 429s all came from serve, none from the proxy's limit"


def test_only_the_trainer_moves_the_champion_alias(compose_stack: Stack) -> None:
    stack = compose_stack
    alias = "/api/2.0/mlflow/registered-models/alias"
    model = {"name": MODEL_NAME, "alias": "champion"}
    with stack.admin("mlflow") as admin:
        before = admin.get(alias, params=model).json()["model_version"]["version"]
        versions = admin.get(
            "/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{MODEL_NAME}'"}
        ).json()["model_versions"]
    other = next((v["version"] for v in versions if v["version"] != before), "1")
    move = {**model, "version": other}
    base = f"http://127.0.0.1:{stack.ports['mlflow']}"
    # the registry's contents are not public, and nobody without credentials moves an alias
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        assert anonymous.get(alias, params=model).status_code == 401
        assert anonymous.post(alias, json=move).status_code == 401
    # serve's own MLflow user reads the registry but may not write it
    reader = ("reader", stack.secret_values["mlflow_reader_password"])
    with httpx.Client(base_url=base, timeout=30, auth=reader) as client:
        assert client.get(alias, params=model).status_code == 200
        assert client.post(alias, json=move).status_code == 403
        assert client.delete(alias, params=model).status_code == 403
    wrong = ("trainer", "example-only-jwt-secret-replace-before-production")
    with httpx.Client(base_url=base, timeout=30, auth=wrong) as client:
        assert client.post(alias, json=move).status_code == 401
    with stack.admin("mlflow") as admin:
        assert admin.get(alias, params=model).json()["model_version"]["version"] == before
    with stack.https() as client:
        assert client.get("/model").json()["source"] == f"models:/{MODEL_NAME}@champion"
