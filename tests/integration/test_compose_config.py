"""The compose file as ``docker-compose`` resolves it with ``.env.example`` (fast: no engine).

``docker-compose config`` interpolates ``.env.example`` exactly as ``docker compose up`` would
after the README's ``cp .env.example .env``; the resolved file is then checked for what the
deployment promises: nothing internal published, no host paths outside the repository, no
Docker socket, pinned images, no secret in .env or in any container's environment, each
generated secret mounted by the services that read it and no other.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.utils.compose import (
    COMPOSE_FILE,
    DOCKERFILES,
    ENV_EXAMPLE,
    base_images,
    ensure_compose_cli,
    run,
)
from tests.utils.paths import REPO_ROOT

pytestmark = pytest.mark.integration

SECRET_NAME = re.compile(r"(?:SECRET|PASSWORD|PASSWD|TOKEN|_KEY|CREDENTIALS?)$")
INTERNAL_ONLY = ("postgres", "redis", "pushgateway", "serve", "monitor", "alert-webhook")
LONG_RUNNING = ("postgres", "redis", "mlflow", "serve", "proxy", "prometheus", "alertmanager")


def _config(env_file: Path) -> subprocess.CompletedProcess[str]:
    compose = ensure_compose_cli()
    return run(
        [compose, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = _config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_env_example_validates_and_defines_every_service(resolved: dict[str, Any]) -> None:
    services = set(resolved["services"])
    contract = {
        "postgres",
        "redis",
        "mlflow",
        "data",
        "prepare",
        "train",
        "predict",
        "serve",
        "monitor",
        "proxy",
        "prometheus",
        "alertmanager",
        "pushgateway",
        "grafana",
        "airflow-init",
        "airflow-scheduler",
        "airflow-webserver",
        "alert-webhook",
        "retrain-account",
    }
    assert contract <= services


def test_the_quick_start_gives_no_secret_to_any_container(resolved: dict[str, Any]) -> None:
    """Secrets are generated files (docker/secrets.toml): a secret-like variable of a container
    may only name a file or a command that reads one."""
    for name, service in resolved["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if not SECRET_NAME.search(key) or value in (None, ""):
                continue
            assert key.endswith(("_FILE", "_CMD")), f"{name}: {key} holds a value"
    env_values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    for key, value in env_values.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example sets {key}"


def test_every_container_waits_for_the_secrets_and_runs_in_production(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]

    def needs(name: str) -> set[str]:
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(needs(dep) for dep in direct)) if direct else set()

    for name, service in services.items():
        if name == "secrets":
            continue
        uses_secrets = any("secrets-" in str(v) for v in service.get("volumes", []))
        if uses_secrets:
            assert "secrets" in needs(name), f"{name} may start before its secrets exist"
        environment = service.get("environment") or {}
        if "RAKUTEN_ENVIRONMENT" in environment:
            assert environment["RAKUTEN_ENVIRONMENT"] == "production", name


def test_each_generated_secret_reaches_only_the_services_that_read_it(
    resolved: dict[str, Any],
) -> None:
    catalogue = tomllib.loads((REPO_ROOT / "docker" / "secrets.toml").read_text())
    folders = {f["path"].split("/")[0] for s in catalogue["secrets"].values() for f in s["files"]}
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    mounted_by: dict[str, set[str]] = {}
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("secrets-"):
                mounted_by.setdefault(source.removeprefix("secrets-"), set()).add(name)
    assert folders | {"store"} == set(mounted_by)
    assert mounted_by["store"] == {"secrets"}
    for folder, services in mounted_by.items():
        readers = services - {"secrets"}
        if folder != "store":
            assert readers, f"secrets-{folder} is mounted by no service"
            assert all(
                ":/run/secrets:ro" in str(v) or str(v).endswith(":ro")
                for name in readers
                for v in raw["services"][name]["volumes"]
                if str(v).startswith(f"secrets-{folder}:")
            ), folder
    assert mounted_by["serve"] == {"secrets", "serve"}
    assert mounted_by["monitor"] == {"secrets", "monitor"}


def test_only_the_proxy_and_admin_uis_are_published(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in INTERNAL_ONLY:
        assert not services[name].get("ports"), f"{name} must not be published"
    for name in ("mlflow", "prometheus", "alertmanager", "grafana", "airflow-webserver"):
        for host_ip, _ in _ports(services[name]):
            assert host_ip == "127.0.0.1", f"{name}'s UI is published beyond loopback"
    assert {target for _, target in _ports(services["proxy"])} == {"8080", "8443"}


def test_no_socket_and_no_host_path_outside_the_repository() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            if ":" not in str(volume):
                continue  # an anonymous volume of the container (no host path)
            source = str(volume).split(":", 1)[0]
            assert "docker.sock" not in str(volume), name
            assert not source.startswith("/"), f"{name}: absolute host path {volume}"
            if source.startswith((".", "$")):
                continue  # repository-relative bind (or one set in .env)
            assert re.fullmatch(r"[a-z0-9-]+", source), f"{name}: {volume}"
            assert source in raw["volumes"], f"{name}: undeclared volume {source}"
    assert {"data", "models", "mlflow-artifacts", "postgres", "prometheus", "grafana"} <= set(
        raw["volumes"]
    )
    assert "serve-spool" in raw["volumes"]


def test_images_are_pinned_and_long_running_services_have_healthchecks(
    resolved: dict[str, Any],
) -> None:
    for tag in base_images():
        name, _, version = tag.rpartition(":")
        assert name and version and version != "latest", f"unpinned image {tag}"
        assert re.search(r"\d", version), f"image tag without a version: {tag}"
    services = resolved["services"]
    for name, service in services.items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    for name in LONG_RUNNING:
        has_check = "healthcheck" in services[name] or "build" in services[name]
        assert has_check, f"{name} has no healthcheck"
    for path in (
        REPO_ROOT / "docker/mlflow/Dockerfile",
        REPO_ROOT / "docker/proxy/Dockerfile",
    ):
        assert "\nHEALTHCHECK " in path.read_text(), path
    stages = _stages(_instructions(REPO_ROOT / "Dockerfile"))
    for name in ("serve", "monitor"):
        assert any(line.startswith("HEALTHCHECK ") for line in stages[name]), name


def _instructions(path: Path) -> list[str]:
    """A Dockerfile's instructions, comments dropped, continuation lines kept."""
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def _stages(lines: list[str]) -> dict[str, list[str]]:
    """Each named stage's lines (``FROM parent AS name`` first), up to the next ``FROM``."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if line.startswith("FROM "):
            current = [line]
            stages[line.split()[-1] if " AS " in line else f"unnamed-{len(stages)}"] = current
        elif current:
            current.append(line)
    return stages


PYTHON_SERVICES = ("data", "train", "predict", "serve", "monitor")


def test_python_services_build_from_the_root_dockerfile_with_matching_package_and_target(
    resolved: dict[str, Any],
) -> None:
    """One Dockerfile: ``PACKAGE`` picks the dependencies, the target the command; a service
    built with one package's dependencies and another's command would start and then fail."""
    built = {
        name: service["build"]
        for name, service in resolved["services"].items()
        if service.get("build", {}).get("dockerfile") == "Dockerfile"
    }
    assert {b["target"] for b in built.values()} == set(PYTHON_SERVICES)
    for name, build in built.items():
        assert build["args"]["PACKAGE"] == build["target"], name
    stages = _stages(_instructions(REPO_ROOT / "Dockerfile"))
    for name in PYTHON_SERVICES:
        assert stages[name][0] == f"FROM runtime AS {name}", name
        assert not any(line.startswith("USER ") for line in stages[name]), name
    assert "USER rakuten" in stages["runtime"]
    assert sorted(REPO_ROOT.glob("services/*/Dockerfile")) == []


def test_dockerfiles_run_as_non_root_from_pinned_python() -> None:
    for path in DOCKERFILES:
        text = path.read_text()
        if path.parent.name != "proxy":  # the proxy is nginx's image
            assert "ARG PYTHON_IMAGE=python:3.11." in text and "-slim" in text, path
        # the last stage, or for the root Dockerfile the runtime stage every service's builds on
        final_stage = text.split("AS runtime\n", 1)[-1].rsplit("\nFROM ", 1)[0]
        if path.name != "Dockerfile" or path.parent != REPO_ROOT:
            final_stage = text.rsplit("\nFROM ", 1)[1]
        users = re.findall(r"(?m)^USER (\S+)$", final_stage)
        assert users and users[-1] not in ("root", "0"), f"{path}: final stage runs as root"
        assert "RUN --mount" not in text, f"{path}: BuildKit-only syntax"


def test_grafana_has_no_anonymous_access_and_a_generated_password(
    resolved: dict[str, Any],
) -> None:
    env = resolved["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"(?m)^#?\s?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text()))
    assert used - documented == set()


def test_dockerignore_keeps_secrets_data_and_state_out_of_the_context() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**", "everything is excluded first, then re-included path by path"
    reincluded = [p[1:] for p in patterns if p.startswith("!")]
    for private in (".env", "data", "models", "logs", ".venv", ".git", "mlruns", "tests"):
        assert not any(p == private or p.startswith(f"{private}/") for p in reincluded), private


def _ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) of each published port, in either CLI's output form.

    ``docker-compose`` 1.29 prints ``127.0.0.1:5000:5000/tcp``; ``docker compose`` v2 prints
    mappings with ``host_ip`` and ``target``.
    """
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "0.0.0.0")), str(port["target"])))
        else:
            host_ip, _, rest = str(port).partition(":")
            out.append((host_ip, rest.split(":")[-1].split("/")[0]))
    return out


def test_every_project_image_can_be_built_by_compose(resolved: dict[str, Any]) -> None:
    """`up` without a prior `build` must never try to pull one of the project's own images."""
    prefix = "rakuten-"
    for name, service in resolved["services"].items():
        if service["image"].startswith(prefix):
            assert "build" in service, f"{name} would be pulled from a registry"


def test_the_quick_start_mounts_only_files_a_fresh_clone_has(resolved: dict[str, Any]) -> None:
    """``cp .env.example .env && docker compose up``: Docker would create a missing bind source
    as a root-owned directory (a secret file path, say), which then breaks the step that
    creates that file. Only the log folder is meant to be created that way."""
    missing = []
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and ":" not in volume:
                continue  # an anonymous volume
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if not source or not source.startswith("/"):
                continue  # a named volume
            path = Path(source)
            if path == REPO_ROOT / "logs" / "compose":
                continue
            if not path.exists():
                missing.append(f"{name}: {source}")
    assert missing == []


def test_the_scheduler_starts_after_the_first_champion(resolved: dict[str, Any]) -> None:
    """Airflow schedules the latest monthly interval at once when the scheduler starts: that
    retrain must find the stack's own first training done, not race it."""
    needs = resolved["services"]["airflow-scheduler"]["depends_on"]
    assert needs["train"]["condition"] == "service_completed_successfully"


def test_the_production_override_pins_every_base_image_by_digest() -> None:
    """docker-compose.prod.yml: each base image the project names (compose file and
    Dockerfiles), with the same tag, at a digest; resolved together with the main file."""
    override = (REPO_ROOT / "docker-compose.prod.yml").read_text()
    pinned = dict(re.findall(r"([a-z0-9./_-]+:[A-Za-z0-9._-]+)@(sha256:[0-9a-f]{64})", override))
    assert set(base_images()) == set(pinned), set(base_images()) ^ set(pinned)
    compose = ensure_compose_cli()
    result = run(
        [
            compose,
            "-f",
            str(COMPOSE_FILE),
            "-f",
            str(REPO_ROOT / "docker-compose.prod.yml"),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
        ],
        timeout=60,
    )
    merged = yaml.safe_load(result.stdout)["services"]
    for name, service in merged.items():
        image = service["image"]
        if "build" in service:
            args = service["build"].get("args", {})
            base = args.get("PYTHON_IMAGE") or args.get("NGINX_IMAGE")
            assert base and "@sha256:" in base, f"{name} builds on an unpinned base"
        else:
            assert "@sha256:" in image, f"{name} runs {image} by tag"


def test_the_pushgateway_keeps_its_figures_across_restarts(resolved: dict[str, Any]) -> None:
    """Each job's last success and failure (the staleness and failure alerts) survive a restart:
    the persistence file lies on the gateway's own named volume."""
    gateway = resolved["services"]["pushgateway"]
    flags = dict(arg.split("=", 1) for arg in gateway["command"] if "=" in arg)
    store = Path(flags["--persistence.file"])
    mounts = {
        (v if isinstance(v, str) else f"{v['source']}:{v['target']}").split(":")[1]: v
        for v in gateway["volumes"]
    }
    assert str(store.parent) in mounts and "pushgateway" in str(mounts[str(store.parent)])
    assert "pushgateway" in yaml.safe_load(COMPOSE_FILE.read_text())["volumes"]


def test_the_quick_start_alertmanager_needs_no_smtp_or_chat(resolved: dict[str, Any]) -> None:
    """Unset, STACK_ALERTMANAGER_CONFIG is the quick start's file (the notification log), and
    the files only alertmanager.people.yml reads are the repository's empty ones."""
    volumes = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in resolved["services"]["alertmanager"]["volumes"]
    ]
    by_target = {v.split(":")[1]: v.split(":")[0] for v in volumes}
    config = by_target["/etc/alertmanager/alertmanager.yml"]
    assert config.endswith("monitoring/alertmanager/alertmanager.yml")
    for target in ("receivers/chat_webhook_url", "receivers/heartbeat_url"):
        source = Path(by_target[f"/etc/alertmanager/{target}"])
        assert source.name == "no-url" and source.read_text() == ""
    monitor_env = resolved["services"]["monitor"]["environment"]
    assert monitor_env["RAKUTEN_MONITOR_NOTIFICATIONS_TOKEN_FILE"] == (
        "/run/secrets/notifications_token"
    )


AIRFLOW = ("airflow-init", "airflow-scheduler", "airflow-webserver")


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes as ``{target: source}`` (short or long syntax)."""
    volumes = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]
    ]
    return {v.split(":")[1]: v.split(":")[0] for v in volumes}


def test_every_root_file_system_is_read_only_the_airflow_ones_included(
    resolved: dict[str, Any],
) -> None:
    """Control 7 (docs/security.md). The e2e stack's ``docker inspect`` check never starts the
    orchestration profile, so its containers are checked here: Airflow writes only to its
    tmpfs folders and volumes (found by tracing it on a read-only root: security.md)."""
    services = resolved["services"]
    for name, service in services.items():
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name
    dockerfile = (REPO_ROOT / "airflow" / "Dockerfile").read_text()
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile  # no __pycache__ beside the DAGs
    assert "RAKUTEN_LOOP_WORKDIR=/opt/rakuten/project" in dockerfile
    for name in AIRFLOW:
        service = services[name]
        uid = service["build"]["args"]["APP_UID"]
        tmpfs = {entry.split(":")[0]: entry for entry in service["tmpfs"]}
        # airflow.cfg, webserver_config.py and the webserver's pid file: the airflow user's only
        assert tmpfs["/run/airflow"] == f"/run/airflow:uid={uid},gid={uid},mode=0700", name
        assert "/var/tmp" in tmpfs, name  # DVC's site cache
        environment = service["environment"]
        assert environment["AIRFLOW_CONFIG"] == "/run/airflow/airflow.cfg", name
        assert environment["AIRFLOW__WEBSERVER__CONFIG_FILE"] == "/run/airflow/webserver_config.py"
        assert environment["HOME"] == "/tmp", name  # the libraries' ~/.cache, ~/.config, ~/.keras
        mounts = _mounts(service)
        assert mounts["/opt/airflow/logs"] == "airflow-logs", name
        assert mounts["/opt/rakuten/project"] == "airflow-work", name  # the pipeline's copy
        assert mounts["/opt/rakuten/project/data"] == "data", name
        assert mounts["/tmp/.mlflow"] == "secrets-airflow", name  # ~/.mlflow/credentials
    webserver = services["airflow-webserver"]["command"]
    assert webserver[webserver.index("--pid") + 1] == "/run/airflow/airflow-webserver.pid"
    scheduler = " ".join(services["airflow-scheduler"]["command"])
    assert "bash /opt/airflow/bin/pipeline-workdir.sh && exec airflow scheduler" in scheduler
    assert "airflow-work" in yaml.safe_load(COMPOSE_FILE.read_text())["volumes"]
