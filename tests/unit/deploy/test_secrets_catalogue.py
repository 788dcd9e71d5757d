"""The Kubernetes secrets: deploy/helm/secrets.toml and deploy/helm/create-secrets.sh."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import bcrypt
import kubernetes_validate
import pytest

from rakuten_core.stack_secrets import STORE, Catalogue, render
from tests.utils.helm import KUBE_VERSION, NAMESPACE, RELEASE
from tests.utils.k8s_secrets import (
    CATALOGUE,
    POSTGRES_HOST,
    REDIS_HOST,
    create_secrets,
    kubectl,
    printed_manifests,
    printed_secrets,
)
from tests.utils.paths import REPO_ROOT

COMPOSE_CATALOGUE = REPO_ROOT / "docker" / "secrets.toml"
ENVIRON = {
    "K8S_POSTGRES_HOST": POSTGRES_HOST,
    "K8S_REDIS_HOST": REDIS_HOST,
    "K8S_FULLNAME": RELEASE,
    "K8S_NAMESPACE": NAMESPACE,
}
# Secrets of the compose stack that no component of the chart reads
LEFT_OUT = {
    "grafana_admin_password": "kube-prometheus-stack's Grafana has its own",
    "alertmanager_api_password": "kube-prometheus-stack's Alertmanager, reached in-cluster",
    "airflow_admin_password": "Airflow's own chart",
    "airflow_secret_key": "Airflow's own chart",
}
# The Secrets the chart's templates read, and their keys (docs/kubernetes.md, "Secrets")
KEYS = {
    "rakuten-serve": {"pgpass", "rakuten_jwt_secret", "rakuten_redis_url", "credentials"},
    "rakuten-migrate": {"pgpass"},
    "rakuten-monitor": {"pgpass", "notifications_token", "credentials"},
    "rakuten-mlflow": {"pgpass", "basic_auth.ini", "flask_secret_key"},
    "rakuten-mlflow-users": {
        "mlflow_admin_password",
        "mlflow_trainer_password",
        "mlflow_reader_password",
    },
    "rakuten-train": {"credentials", "pushgateway_password"},
    "rakuten-predict": {"credentials", "pushgateway_password"},
    "rakuten-pushgateway": {"web.yml", "health_auth", "username", "password"},
    "rakuten-alert-webhook": {"alert_webhook_token", "airflow_password", "prometheus_password"},
    "rakuten-alertmanager": {
        "notifications_token",
        "webhook_token",
        "notifications_url",
        "heartbeat_url",
    },
    "rakuten-airflow-loop": {
        "credentials",
        "pushgateway_password",
        "serve_retrain_password",
        "pgpass",
    },
    "rakuten-postgres": {
        "postgres_password",
        "db_owner_password",
        "db_serve_password",
        "db_monitor_password",
        "db_mlflow_password",
        "db_airflow_password",
    },
    "rakuten-redis": {"redis.conf"},
    "rakuten-retrain-account": {"pgpass", "serve_retrain_password"},
}
DEV_ONLY = {"rakuten-postgres", "rakuten-redis"}
NO_COMPOSE_TWIN = {
    "pushgateway/username",
    "alertmanager/notifications_url",
    "alertmanager/heartbeat_url",
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One --print run: its folder, stdout and stderr."""
    directory = tmp_path_factory.mktemp("k8s") / "secrets"
    result = create_secrets(directory)
    return directory, result.stdout, result.stderr


def _stored(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in (directory / STORE).iterdir()}


def test_every_secret_a_component_needs_is_in_the_kubernetes_catalogue() -> None:
    compose = Catalogue.load(COMPOSE_CATALOGUE).secrets
    kubernetes = Catalogue.load(CATALOGUE).secrets
    assert set(LEFT_OUT) <= set(compose)
    assert set(kubernetes) == set(compose) - set(LEFT_OUT)
    for name, spec in kubernetes.items():
        assert spec.min_chars == compose[name].min_chars, name
        # each file is made as one of the compose stack's files of the same secret, the hosts
        # aside (the Pushgateway's user name and the Alertmanager receivers' URLs, which the
        # CRD takes from a Secret, have no compose twin)
        made_in_compose = {file.template for file in compose[name].files}
        for file in spec.files:
            template = file.template.replace("{env:K8S_POSTGRES_HOST}", "postgres")
            template = template.replace("{env:K8S_REDIS_HOST}", "redis")
            assert template in made_in_compose or file.path in NO_COMPOSE_TWIN, file.path


def test_the_printed_secrets_are_valid_one_per_folder_with_the_charts_keys(
    made: tuple[Path, str, str],
) -> None:
    directory, stdout, _ = made
    secrets = printed_secrets(stdout)
    assert {name: set(data) for name, data in secrets.items()} == KEYS
    folders = {p.name for p in directory.iterdir() if p.name != STORE}
    assert {f"rakuten-{folder}" for folder in folders} == set(KEYS)
    for manifest in printed_manifests(stdout):
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == NAMESPACE
        assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "rakuten"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_secret_has_the_same_value_in_every_secret_that_holds_it(
    made: tuple[Path, str, str],
) -> None:
    directory, stdout, _ = made
    secrets, stored = printed_secrets(stdout), _stored(directory)
    for name, spec in Catalogue.load(CATALOGUE).secrets.items():
        for file in spec.files:
            folder, key = file.path.split("/")
            value = secrets[f"rakuten-{folder}"][key]
            if "{bcrypt}" in file.template:
                hashed = value.split(": ")[-1].strip()
                assert bcrypt.checkpw(stored[name].encode(), hashed.encode()), file.path
            else:
                assert value == render(file.template, stored[name], environ=ENVIRON), file.path
    postgres, alertmanager = secrets["rakuten-postgres"], secrets["rakuten-alertmanager"]
    assert secrets["rakuten-serve"]["pgpass"].endswith(":" + postgres["db_serve_password"])
    assert alertmanager["webhook_token"] == secrets["rakuten-alert-webhook"]["alert_webhook_token"]
    assert alertmanager["notifications_token"] == secrets["rakuten-monitor"]["notifications_token"]
    redis = secrets["rakuten-redis"]["redis.conf"].removeprefix("requirepass ").strip()
    assert secrets["rakuten-serve"]["rakuten_redis_url"] == f"redis://:{redis}@{REDIS_HOST}:6379/0"
    assert f"@{POSTGRES_HOST}:5432/mlflow_auth" in secrets["rakuten-mlflow"]["basic_auth.ini"]
    pushgateway = secrets["rakuten-pushgateway"]
    assert pushgateway["username"] == "pushgateway"
    assert pushgateway["password"] == secrets["rakuten-train"]["pushgateway_password"]


def test_a_second_run_keeps_every_value(tmp_path: Path) -> None:
    first = printed_secrets(create_secrets(tmp_path / "s").stdout)
    second = printed_secrets(create_secrets(tmp_path / "s").stdout)
    # the web configuration's bcrypt hash is salted anew at each run, for the same password
    for made in (first, second):
        assert made["rakuten-pushgateway"].pop("web.yml").startswith("basic_auth_users:")
    assert second == first


def test_no_secret_value_is_shown_outside_the_printed_data(made: tuple[Path, str, str]) -> None:
    directory, stdout, stderr = made
    shown = [stderr, *(str({**doc, "data": None}) for doc in printed_manifests(stdout))]
    # every file but the Pushgateway's user name holds a secret
    files = [p for p in directory.glob("*/*") if p.relative_to(directory).parts[0] != STORE]
    contents = [p.read_text() for p in files if p.name != "username"]
    for secret in (*_stored(directory).values(), *contents):
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        assert not any(form in text for form in forms for text in shown)
        assert secret not in stdout


def test_apply_sends_each_secret_to_a_server_side_apply(tmp_path: Path) -> None:
    applied = tmp_path / "applied.yaml"
    fake = tmp_path / "kubectl"
    fake.write_text(
        "#!/bin/bash\n"
        'if [[ $1 == apply ]]; then printf "%s\\n" "$*" >> "$APPLIED.args"; '
        'cat >> "$APPLIED"; echo "---" >> "$APPLIED"; echo "secret applied"; exit 0; fi\n'
        f'exec "{kubectl()}" "$@"\n'
    )
    fake.chmod(0o755)
    args = ("--namespace", NAMESPACE, "--postgres-host", "pg", "--redis-host", "redis", "--apply")
    env = {"KUBECTL": str(fake), "APPLIED": str(applied)}
    result = create_secrets(tmp_path / "s", *args, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert set(printed_secrets(applied.read_text())) == set(KEYS)
    calls = Path(f"{applied}.args").read_text().splitlines()
    assert len(calls) == len(KEYS)
    assert all("--server-side" in call and call.endswith("-f -") for call in calls)
    for secret in _stored(tmp_path / "s").values():
        assert secret not in result.stdout + result.stderr


def test_literals_and_external_databases(tmp_path: Path) -> None:
    made = create_secrets(
        tmp_path / "s",
        *("--namespace", NAMESPACE, "--postgres-host", "pg", "--redis-host", "redis"),
        *("--literal", "alertmanager:smtp_password=from-the-mail-team", "--external-databases"),
        "--print",
    )
    secrets = printed_secrets(made.stdout)
    assert set(secrets) == set(KEYS) - DEV_ONLY
    alertmanager = secrets["rakuten-alertmanager"]
    assert alertmanager.pop("smtp_password") == "from-the-mail-team"
    assert set(alertmanager) == KEYS["rakuten-alertmanager"]
    # the receivers' URLs name this release's monitor in its namespace
    assert alertmanager["notifications_url"] == (
        f"http://{RELEASE}-monitor.{NAMESPACE}.svc:9108/notifications"
    )


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("nothing:key=v", "no Secret for 'nothing'"),
        ("alertmanager:webhook_token=v", "already has a key 'webhook_token'"),
        ("alertmanager-no-key", "expected SECRET:KEY=VALUE"),
    ],
)
def test_a_bad_literal_is_refused(tmp_path: Path, literal: str, message: str) -> None:
    refused = create_secrets(
        tmp_path / "s",
        *("--namespace", NAMESPACE, "--postgres-host", "pg", "--redis-host", "redis"),
        *("--literal", literal, "--print"),
        check=False,
    )
    assert refused.returncode == 2
    assert message in refused.stderr and refused.stdout == ""


def test_a_missing_postgres_host_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    refused = create_secrets(
        tmp_path / "s", "--namespace", NAMESPACE, "--redis-host", "redis", "--print", check=False
    )
    assert refused.returncode == 2
    assert "--postgres-host is required" in refused.stderr
    assert refused.stdout == "" and not (tmp_path / "s").exists()


def test_a_folder_the_script_did_not_make_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    refused = create_secrets(tmp_path / "s", check=False)
    assert refused.returncode == 2 and "not a folder of this script" in refused.stderr
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"
