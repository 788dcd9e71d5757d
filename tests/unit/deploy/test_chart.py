"""The Helm chart (deploy/helm/rakuten), checked without a cluster by the tools a Kubernetes user
trusts: the real Helm (lint, template, the values schema), the Kubernetes API schemas of a
current release (kubernetes-validate, strict: an unknown field is an error), and policy checks
over every rendered manifest. The Prometheus Operator objects: test_chart_monitoring.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from rakuten_core.settings import SECRETS_DIR_ENV
from rakuten_monitor.settings import MonitorSettings
from rakuten_monitor.webhook_settings import WebhookSettings
from rakuten_serve.settings import ServeSettings
from tests.utils.helm import (
    CHART,
    KUBE_VERSION,
    VALUES_FILES,
    Rendered,
    helm,
    render,
    template_args,
)
from tests.utils.paths import REPO_ROOT

ALL_VALUES = list(VALUES_FILES)
# validated by test_chart_monitoring.py against the operator's documented fields
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# the only images that are not the project's: development-only databases (values-dev.yaml)
DEV_IMAGES = re.compile(r"^docker\.io/library/(postgres|redis):[0-9][\w.-]*$")


def _pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def _workloads(rendered: Rendered) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for manifest in rendered.manifests:
        if manifest["kind"] in WORKLOADS:
            yield manifest, _pod_spec(manifest)


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _where(manifest: dict[str, Any], container: dict[str, Any] | None = None) -> str:
    name = f"{manifest['kind']}/{manifest['metadata']['name']}"
    return f"{name} container {container['name']}" if container else name


# ------------------------------------------------------------------------ Helm and its inputs
def test_the_pinned_helm_is_the_one_installed() -> None:
    script = (REPO_ROOT / "scripts" / "install-helm.sh").read_text(encoding="utf-8")
    pinned = re.search(r'HELM_VERSION="(v[0-9.]+)"', script)
    assert pinned is not None
    assert helm("version", "--template", "{{.Version}}").stdout.strip() == pinned.group(1)


@pytest.mark.parametrize("values", ALL_VALUES)
def test_helm_lint_is_clean_in_strict_mode(values: str) -> None:
    args = ["lint", str(CHART), "--strict"]
    path = VALUES_FILES[values]
    if path is not None:
        args += ["--values", str(path)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("serve.replicas=0", "minimum"),
        ("serve.jwtSecret=abc", "additional properties 'jwtSecret' not allowed"),
        ("images.serve.digest=sha256:abc", "does not match pattern"),
        ("image.tag=latest!", "does not match pattern"),
        ("security.uid=0", "minimum"),
        ("serve.rateLimits.predict=ten", "does not match pattern"),
        ("pipeline.dataSource=s3", "value must be one of"),
        ("secrets.serve=Not_A_Name", "does not match pattern"),
        ("environment=prod", "value must be one of"),
    ],
)
def test_the_values_schema_refuses_bad_values(setting: str, message: str) -> None:
    result = helm(*template_args("default", "--set", setting), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_the_values_files_set_only_what_the_schema_knows() -> None:
    # the schema forbids unknown keys: a values file with a typo would fail `helm template`,
    # so rendering every shipped file (the fixtures below) proves each key exists
    for values in ALL_VALUES:
        assert render(values).manifests


# ------------------------------------------------------------------ Kubernetes' own schemas
@pytest.mark.parametrize("values", ALL_VALUES)
def test_every_manifest_passes_the_kubernetes_schemas_strictly(values: str) -> None:
    rendered = render(values)
    failures = []
    for manifest in rendered.manifests:
        if manifest["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{_where(manifest)}: {error.message}")
    assert not failures, "\n".join(failures)
    kinds = {m["kind"] for m in rendered.manifests}
    assert kinds - OPERATOR_KINDS, "nothing was validated"


def test_the_validator_catches_an_unknown_field() -> None:
    # the strict mode is what the tests above rely on: a misspelt field must fail
    deployment = render("default").named("Deployment", "rakuten-serve")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


# ------------------------------------------------------------------------------- policies
@pytest.mark.parametrize("values", ALL_VALUES)
def test_every_container_is_bounded_and_unprivileged(values: str) -> None:
    failures = []
    for manifest, pod in _workloads(render(values)):
        pod_ctx = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            failures.append(f"{_where(manifest)}: mounts a service account token")
        if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            failures.append(f"{_where(manifest)}: no RuntimeDefault seccomp profile")
        for container in _containers(pod):
            where = _where(manifest, container)
            ctx = container.get("securityContext", {})
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})):
                failures.append(f"{where}: no cpu and memory requests")
            if "memory" not in resources.get("limits", {}):
                failures.append(f"{where}: no memory limit")
            if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
                failures.append(f"{where}: may run as root")
            if 0 in (ctx.get("runAsUser"), pod_ctx.get("runAsUser")):
                failures.append(f"{where}: runs as uid 0")
            if ctx.get("readOnlyRootFilesystem") is not True:
                failures.append(f"{where}: writable root file system")
            if ctx.get("allowPrivilegeEscalation") is not False:
                failures.append(f"{where}: may escalate privileges")
            if ctx.get("privileged"):
                failures.append(f"{where}: privileged")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"] or ctx["capabilities"].get("add"):
                failures.append(f"{where}: capabilities not all dropped")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("values", ALL_VALUES)
def test_every_long_running_container_has_probes(values: str) -> None:
    failures = []
    for manifest, pod in _workloads(render(values)):
        if manifest["kind"] not in LONG_RUNNING:
            continue
        for container in pod["containers"]:
            missing = {"readinessProbe", "livenessProbe"} - set(container)
            if missing:
                failures.append(f"{_where(manifest, container)}: no {sorted(missing)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("values", ALL_VALUES)
def test_every_image_is_the_projects_pinned_from_values(values: str) -> None:
    rendered = render(values)
    default = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    registry = _values_file(values).get("image", {}).get("registry") or default["image"]["registry"]
    project = re.compile(
        rf"^{re.escape(registry)}/rakuten-[a-z0-9-]+(:[A-Za-z0-9_][\w.-]*|@sha256:[0-9a-f]{{64}})$"
    )
    failures = []
    for manifest, pod in _workloads(rendered):
        for container in _containers(pod):
            image = container["image"]
            if image.endswith(":latest") or not (project.match(image) or DEV_IMAGES.match(image)):
                failures.append(f"{_where(manifest, container)}: {image}")
            if DEV_IMAGES.match(image) and not manifest["metadata"]["name"].endswith(
                ("-postgres", "-redis", "-db-roles")
            ):
                failures.append(f"{_where(manifest, container)}: a development image: {image}")
    assert not failures, "\n".join(failures)


def test_a_digest_pins_an_image_over_its_tag() -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render("default", "--set", f"images.serve.digest={digest}")
    pod = _pod_spec(rendered.named("Deployment", "rakuten-serve"))
    assert pod["containers"][0]["image"] == f"ghcr.io/rakuten-mlops/rakuten-serve@{digest}"


@pytest.mark.parametrize("values", ALL_VALUES)
def test_no_secret_is_rendered_and_no_secret_is_a_literal(values: str) -> None:
    rendered = render(values)
    assert not rendered.of_kind("Secret"), "the chart renders no Secret: they exist beforehand"
    secret_like = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|CREDENTIALS?)(_FILE|_DIR)?$")
    failures = []
    for manifest, pod in _workloads(rendered):
        for container in _containers(pod):
            for env in container.get("env", []):
                if secret_like.search(env["name"]) and "value" in env:
                    # only file paths may be given: the secret is the file's content
                    if not re.match(r"^(/run/secrets|/tmp/\.mlflow)(/[\w.]+)?$", str(env["value"])):
                        failures.append(f"{_where(manifest, container)}: {env['name']} literal")
            for arg in [*container.get("args", []), *container.get("command", [])]:
                if re.search(r"://[^/@\s]+:[^/@\s]+@", str(arg)):
                    failures.append(f"{_where(manifest, container)}: a password in a URL: {arg}")
    assert not failures, "\n".join(failures)


def test_no_generated_secret_value_appears_in_any_rendered_manifest(tmp_path: Any) -> None:
    from tests.utils.k8s_secrets import generated_secret_values

    values = generated_secret_values(tmp_path)
    assert values
    for name in ALL_VALUES:
        text = render(name).text
        leaked = [v for v in values if len(v) >= 12 and v in text]
        assert not leaked, f"{name}: {len(leaked)} secret values rendered"


@pytest.mark.parametrize("values", ALL_VALUES)
def test_every_secret_the_chart_reads_is_made_by_the_generator(values: str, tmp_path: Any) -> None:
    from tests.utils.k8s_secrets import generated_secret_keys

    generated = generated_secret_keys(tmp_path)
    failures = []
    for manifest, pod in _workloads(render(values)):
        for volume in pod.get("volumes", []):
            secret = volume.get("secret")
            if secret is None:
                continue
            if secret["secretName"] not in generated.keys() | _external_secrets(values):
                failures.append(f"{_where(manifest)}: Secret {secret['secretName']} unknown")
                continue
            keys = generated.get(secret["secretName"])
            if keys is None:
                continue
            wanted = {item["key"] for item in secret.get("items", [])}
            mounts = [
                m
                for c in _containers(pod)
                for m in c.get("volumeMounts", [])
                if m["name"] == volume["name"]
            ]
            for container in _containers(pod):
                for env in container.get("env", []):
                    for mount in mounts:
                        prefix = mount["mountPath"].rstrip("/") + "/"
                        if str(env.get("value", "")).startswith(prefix):
                            wanted.add(env["value"].removeprefix(prefix))
            if not wanted <= keys:
                failures.append(f"{_where(manifest)}: {secret['secretName']} lacks {wanted - keys}")
    assert not failures, "\n".join(failures)


def _values_file(values: str) -> dict[str, Any]:
    """What a shipped values file sets (nothing for the default values)."""
    path = VALUES_FILES[values]
    return dict(yaml.safe_load(path.read_text(encoding="utf-8"))) if path else {}


def _external_secrets(values: str) -> set[str]:
    """Secrets the deployer brings that the generator does not make (TLS, S3, Hub token)."""
    s3 = (_values_file(values).get("mlflow") or {}).get("artifacts", {}).get("s3", {})
    return {s3["credentialsSecret"]} if s3.get("credentialsSecret") else set()


@pytest.mark.parametrize(
    ("deployment", "settings"),
    [
        ("rakuten-serve", ServeSettings),
        ("rakuten-monitor", MonitorSettings),
        ("rakuten-alert-webhook", WebhookSettings),
    ],
)
def test_every_rakuten_setting_the_chart_sets_exists(deployment: str, settings: Any) -> None:
    # a misspelt RAKUTEN_ variable would be ignored silently by the service
    rendered = render("production")
    pod = _pod_spec(rendered.named("Deployment", deployment))
    known = {f"RAKUTEN_{name.upper()}" for name in settings.model_fields} | {SECRETS_DIR_ENV}
    names = {env["name"] for env in pod["containers"][0]["env"]}
    unknown = {n for n in names if n.startswith("RAKUTEN_")} - known
    assert not unknown


# ------------------------------------------------------------------------------- shape
def test_serve_probes_use_the_apis_health_routes() -> None:
    from rakuten_serve.routers.health import router

    routes = {getattr(route, "path", None) for route in router.routes}
    pod = _pod_spec(render("default").named("Deployment", "rakuten-serve"))
    container = pod["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    # serve does not retry a model it could not load: a pod is restarted until it has one
    assert container["startupProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"


def test_services_select_their_deployments_and_name_their_ports() -> None:
    rendered = render("production")
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        targets = [
            (d, _pod_spec(d))
            for d in rendered.of_kind("Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in targets[0][1]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def _proxy_routes() -> set[tuple[str, str]]:
    """The public routes of the compose proxy (docker/proxy/conf/routes.conf)."""
    text = (REPO_ROOT / "docker" / "proxy" / "conf" / "routes.conf").read_text(encoding="utf-8")
    routes: set[tuple[str, str]] = set()
    for modifier, target in re.findall(r"^location (=|\^~|~) (\S+) \{", text, re.MULTILINE):
        if modifier == "=":
            routes.add((target, "Exact"))
        elif modifier == "^~":
            routes.add((target, "Prefix"))
        else:
            alternatives = re.fullmatch(r"\^/\((.+)\)\$", target)
            assert alternatives is not None, target
            routes |= {("/" + a.replace("\\.", "."), "Exact") for a in alternatives[1].split("|")}
    routes.discard(("/proxy-health", "Exact"))  # the proxy's own health, answered by nginx
    return routes


def test_the_ingress_routes_exactly_the_proxys_public_routes() -> None:
    ingresses = render("production").of_kind("Ingress")
    routed = {
        (path["path"], path["pathType"])
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routed == _proxy_routes()
    assert not {p for p, _ in routed} & {"/metrics", "/admin", "/admin/"}


def test_the_ingress_limits_are_the_proxys() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")

    def default(variable: str) -> str:
        found = re.search(rf"\$\{{{variable}:-([^}}]+)\}}", compose)
        assert found is not None, variable
        return found.group(1)

    by_name = {
        i["metadata"]["name"]: i["metadata"]["annotations"]
        for i in render("default").of_kind("Ingress")
    }
    token, api = by_name["rakuten-serve-token"], by_name["rakuten-serve-api"]
    assert (
        default("STACK_PROXY_TOKEN_RATE") == f"{token['nginx.ingress.kubernetes.io/limit-rpm']}r/m"
    )
    assert default("STACK_PROXY_API_RATE") == f"{api['nginx.ingress.kubernetes.io/limit-rps']}r/s"
    burst = int(api["nginx.ingress.kubernetes.io/limit-rps"]) * int(
        api["nginx.ingress.kubernetes.io/limit-burst-multiplier"]
    )
    assert str(burst) == default("STACK_PROXY_API_BURST")
    for each in by_name.values():
        assert each["nginx.ingress.kubernetes.io/limit-connections"] == default(
            "STACK_PROXY_CONN_LIMIT"
        )


def test_production_scales_serve_on_cpu_and_requests_in_flight() -> None:
    rendered = render("production")
    hpa = rendered.named("HorizontalPodAutoscaler", "rakuten-serve")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rakuten-serve",
    }
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    in_flight = metrics["Pods"]["pods"]["metric"]["name"]
    source = (REPO_ROOT / "services/serve/src/rakuten_serve/metrics.py").read_text(encoding="utf-8")
    assert f'"{in_flight}"' in source, "the HPA scales on a metric serve does not export"
    # an HPA owns the replica count: the Deployment must not fight it
    assert "replicas" not in rendered.named("Deployment", "rakuten-serve")["spec"]
    pdb = rendered.named("PodDisruptionBudget", "rakuten-serve")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    tls = {t["secretName"] for i in rendered.of_kind("Ingress") for t in i["spec"]["tls"]}
    assert tls == {"rakuten-tls"}
    assert all(
        i["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
        for i in rendered.of_kind("Ingress")
    )


def test_the_pipeline_runs_in_order_after_the_schema_and_the_mlflow_users() -> None:
    jobs = {
        j["metadata"]["name"]: j["metadata"]["annotations"] for j in render("dev").of_kind("Job")
    }
    weight = {name: int(a["helm.sh/hook-weight"]) for name, a in jobs.items()}
    order = ["rakuten-db-roles", "rakuten-migrate", "rakuten-mlflow-users", "rakuten-data",
             "rakuten-prepare", "rakuten-train", "rakuten-predict"]  # fmt: skip
    assert sorted(weight, key=weight.__getitem__) == order
    assert all("post-install" in jobs[name]["helm.sh/hook"] for name in order)
    # a plain upgrade changes no model: the pipeline runs on upgrade only when asked
    assert all("post-upgrade" not in jobs[name]["helm.sh/hook"] for name in order[3:])
    upgraded = render("dev", "--set", "pipeline.runOnUpgrade=true").of_kind("Job")
    assert all("post-upgrade" in j["metadata"]["annotations"]["helm.sh/hook"] for j in upgraded
               if j["metadata"]["name"] in order[3:])  # fmt: skip


def test_only_the_gpu_values_put_training_on_a_gpu_node() -> None:
    for values in ALL_VALUES:
        for manifest, pod in _workloads(render(values)):
            gpu = [
                c for c in pod["containers"] if "nvidia.com/gpu" in c["resources"].get("limits", {})
            ]
            if values == "gpu" and manifest["metadata"]["name"] == "rakuten-train":
                assert gpu and gpu[0]["image"].split("/")[-1].startswith("rakuten-train-gpu:")
                assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
                assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
            else:
                assert not gpu, f"{values}: {_where(manifest)}"


def test_network_policies_let_only_the_ingress_prometheus_and_airflow_reach_serve() -> None:
    rendered = render("production")
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    deny = policies["rakuten-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    serve = policies["rakuten-serve-ingress"]["spec"]
    peers = serve["ingress"][0]["from"]
    outside = [p["namespaceSelector"]["matchLabels"] for p in peers if "namespaceSelector" in p]
    assert outside == [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ]
    # Airflow in the release's namespace: its own pods, and the DAG's step pods
    assert [p["podSelector"]["matchLabels"] for p in peers if "namespaceSelector" not in p] == [
        {"tier": "airflow"},
        {"app.kubernetes.io/part-of": "rakuten", "app.kubernetes.io/name": "retrain"},
    ]
    assert serve["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    # the external databases: every pod but their clients is kept away from them
    egress = policies["rakuten-databases-egress"]["spec"]
    clients = egress["podSelector"]["matchExpressions"][1]
    assert clients["operator"] == "NotIn"
    assert set(clients["values"]) == {
        "serve", "migrate", "monitor", "mlflow", "retrain-account", "db-roles"
    }  # fmt: skip
    assert egress["egress"][0]["to"][0]["ipBlock"]["except"] == ["10.20.0.0/24"]
    # every long-running component is covered by an allow rule on its own port
    for deployment in rendered.of_kind("Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert f"rakuten-{component}-ingress" in policies, component


def test_the_dev_databases_admit_only_their_clients() -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in render("dev").of_kind("NetworkPolicy")}
    redis = policies["rakuten-redis-ingress"]["ingress"][0]["from"]
    assert redis == [
        {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["rakuten"]},
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": ["serve"]},
                ]
            }
        }
    ]
    postgres = policies["rakuten-postgres-ingress"]["ingress"][0]["from"][-1]
    assert set(postgres["podSelector"]["matchExpressions"][1]["values"]) == {
        "serve", "migrate", "monitor", "mlflow", "db-roles", "retrain-account"
    }  # fmt: skip


def test_storage_claims_match_what_the_pods_mount() -> None:
    for values in ALL_VALUES:
        rendered = render(values)
        claims = {c["metadata"]["name"] for c in rendered.of_kind("PersistentVolumeClaim")}
        for manifest, pod in _workloads(rendered):
            for volume in pod.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, (
                        f"{values}: {_where(manifest)}"
                    )


def test_an_existing_claim_is_used_and_not_created() -> None:
    rendered = render("default", "--set", "storage.data.existingClaim=team-data")
    claims = {c["metadata"]["name"] for c in rendered.of_kind("PersistentVolumeClaim")}
    assert "rakuten-data" not in claims
    pod = _pod_spec(rendered.named("Job", "rakuten-data"))
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "team-data"}} in pod["volumes"]


def test_no_namespace_is_hard_coded() -> None:
    # rendered into another namespace, nothing stays behind in the first one
    for values in ALL_VALUES:
        for manifest in render(values, "--namespace", "elsewhere").manifests:
            assert manifest["metadata"].get("namespace", "elsewhere") == "elsewhere", _where(
                manifest
            )
    for path in (CHART / "templates").glob("*.yaml"):
        for line in re.findall(r"^\s*namespace:.*$", path.read_text(encoding="utf-8"), re.M):
            assert ".Release.Namespace" in line, f"{path.name}: {line.strip()}"


def test_every_object_carries_the_recommended_labels() -> None:
    wanted = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
        "helm.sh/chart",
    }
    for values in ALL_VALUES:
        for manifest in render(values).manifests:
            assert wanted <= set(manifest["metadata"].get("labels", {})), _where(manifest)


def test_every_project_image_the_chart_pulls_is_published() -> None:
    # the release publishes and promotes these by digest (scripts/publish-images.sh); the GPU
    # variant of train is documented, not built (docs/kubernetes.md, "Training on GPUs")
    script = (REPO_ROOT / "scripts" / "publish-images.sh").read_text(encoding="utf-8")
    published = {f"rakuten-{name}" for name in re.findall(r'^  "([a-z]+)=', script, re.M)}
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    pulled = {image["repository"] for image in values["images"].values()}
    assert pulled <= published, pulled - published
    assert values["pipeline"]["train"]["gpu"]["image"]["repository"] == "rakuten-train-gpu"


def test_the_network_policies_admit_the_dags_step_pods() -> None:
    # the DAG labels its KubernetesPodOperator pods (airflow/dags/rakuten_loop/pods.py): those
    # labels must be a peer the chart admits to MLflow, the Pushgateway and serve
    source = (REPO_ROOT / "airflow/dags/rakuten_loop/pods.py").read_text(encoding="utf-8")
    found = re.search(r"labels=(\{[^}]*\})", source)
    assert found is not None
    labels = yaml.safe_load(found.group(1))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    peers = [p["podSelector"]["matchLabels"] for p in values["networkPolicy"]["airflow"]]
    assert any(peer.items() <= labels.items() for peer in peers), (labels, peers)
    policies = {
        p["metadata"]["name"]: p["spec"] for p in render("default").of_kind("NetworkPolicy")
    }
    for target in ("serve", "mlflow", "pushgateway"):
        admitted = [
            p["podSelector"].get("matchLabels", {})
            for p in policies[f"rakuten-{target}-ingress"]["ingress"][0]["from"]
            if "namespaceSelector" not in p
        ]
        assert any(a and a.items() <= labels.items() for a in admitted), target
