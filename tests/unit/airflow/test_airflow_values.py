"""deploy/helm/airflow-values.yaml: the official Airflow chart's values for the retraining DAG.

No cluster and no copy of the chart here: the pieces of the values that become Kubernetes
objects (security contexts, volumes, mounts, environment, resources) are put together as the
scheduler's pod and validated against the Kubernetes 1.35 schema (strict), and the loop's
settings are compared with the compose stack's (docker-compose.yml, x-airflow).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.utils.paths import REPO_ROOT

VALUES = REPO_ROOT / "deploy" / "helm" / "airflow-values.yaml"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return loaded


def _env(values: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in values["env"]}


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [str(k) for k in node] + [k for v in node.values() for k in _keys(v)]
    if isinstance(node, list):
        return [k for v in node for k in _keys(v)]
    return []


def test_the_schedulers_pod_is_valid_kubernetes(values: dict[str, Any]) -> None:
    scheduler = values["scheduler"]
    image = values["images"]["airflow"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "airflow-scheduler"},
        "spec": {
            "securityContext": values["securityContexts"]["pod"],
            "volumes": values["volumes"] + scheduler["extraVolumes"],
            "containers": [
                {
                    "name": "scheduler",
                    "image": f"{image['repository']}:{image['tag']}",
                    "imagePullPolicy": image["pullPolicy"],
                    "args": ["bash", "-c", "exec airflow scheduler"],
                    "env": values["env"],
                    "securityContext": values["securityContexts"]["container"],
                    "volumeMounts": values["volumeMounts"] + scheduler["extraVolumeMounts"],
                    "resources": scheduler["resources"],
                    "livenessProbe": {"exec": {"command": scheduler["livenessProbe"]["command"]}},
                }
            ],
        },
    }
    kubernetes_validate.validate(pod, "1.35.0", strict=True)


def test_the_components_run_hardened_and_may_launch_pods(values: dict[str, Any]) -> None:
    pod, container = values["securityContexts"]["pod"], values["securityContexts"]["container"]
    assert pod["runAsNonRoot"] and pod["runAsUser"] == values["uid"] == 10001
    assert container["readOnlyRootFilesystem"] and not container["allowPrivilegeEscalation"]
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert values["executor"] == "LocalExecutor"  # the pod-launcher Role goes to the scheduler
    assert values["rbac"]["create"] and values["allowPodLaunching"]
    assert not values["multiNamespaceMode"]
    # secrets come from existing Secrets, never from values
    assert values["data"]["metadataSecretName"] and values["webserverSecretKeySecretName"]
    assert not values["postgresql"]["enabled"] and not values["webserver"]["defaultUser"]["enabled"]
    assert not [key for key in _keys(values) if "password" in key.lower() or key == "secretKey"]


def test_the_steps_run_as_pods_of_the_airflow_image(values: dict[str, Any]) -> None:
    env = _env(values)
    image = values["images"]["airflow"]
    assert env["RAKUTEN_LOOP_EXECUTION"] == "kubernetes"
    assert env["RAKUTEN_LOOP_POD_IMAGE"] == f"{image['repository']}:{image['tag']}"
    assert values["defaultAirflowTag"] == image["tag"] and values["airflowVersion"] == "2.10.5"
    # the worker reads serve's password from the file its Secret volume projects
    (volume,) = values["scheduler"]["extraVolumes"]
    (mount,) = values["scheduler"]["extraVolumeMounts"]
    assert volume["secret"]["secretName"] == f"{env['RAKUTEN_LOOP_POD_FULLNAME']}-airflow-loop"
    (item,) = volume["secret"]["items"]
    assert env["RAKUTEN_LOOP_SERVE_PASSWORD_FILE"] == f"{mount['mountPath']}/{item['path']}"


def test_the_loop_gets_every_setting_compose_gives_it(values: dict[str, Any]) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    wanted = {
        name
        for name in compose["x-airflow"]["environment"]
        if name.startswith(("RAKUTEN_", "MLFLOW_")) or name in ("PGPASSFILE", "HOME")
    }
    env = _env(values)
    assert wanted - set(env) == set()
    for name in ("MLFLOW_TRACKING_URI", "RAKUTEN_PUSHGATEWAY_URL", "RAKUTEN_LOOP_SERVE_URLS"):
        assert "://rakuten-" in env[name], name  # the platform chart's Services
