"""``RAKUTEN_LOOP_EXECUTION=kubernetes``: the DAG's steps as pods (rakuten_loop/pods.py).

One subprocess of Airflow's own environment imports the DAG in each mode, renders the pod of
every step as the KubernetesPodOperator would create it (``build_pod_request_obj``, no cluster:
a kubeconfig that is never dialled) and prints them; the test validates each against the
Kubernetes 1.35 schema (``kubernetes-validate``, strict: no unknown field) and checks the
image, the command, the claims, the Secret, the security context and the GPU option. The pods'
entry script runs here in bash on a throw-away pipeline checkout.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.utils.airflow_env import DAGS_FOLDER, airflow_bin, airflow_env
from tests.utils.paths import REPO_ROOT

IMAGE = "registry.example.org/rakuten-airflow:0.1.0"
WORKDIR = "/opt/rakuten/project"
RUN_ID = "manual__2026-01-10T00:00:00+00:00"
RUN_DIR = f"{WORKDIR}/reports/loop/manual__2026-01-10T00_00_00_00_00"
HEAVY = ["export_feedback", "run_pipeline", "register_challenger", "gate", "promote", "report"]
LIGHT = {"choose": "BranchPythonOperator", "keep_champion": "PythonOperator",
         "reload_serve": "PythonOperator"}  # fmt: skip
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: never-used}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
# the Airflow workers' environment, as deploy/helm/airflow-values.yaml sets it
WORKER_ENV = {
    "RAKUTEN_LOOP_WORKDIR": WORKDIR,
    "RAKUTEN_LOOP_BIN": "/opt/rakuten/venv/bin",
    "RAKUTEN_LOOP_POD_IMAGE": IMAGE,
    "RAKUTEN_LOOP_POD_NAMESPACE": "rakuten",
    "RAKUTEN_LOOP_DATABASE_URL": "postgresql+psycopg://airflow@db.example.org:5432/rakuten",
    "RAKUTEN_LOOP_IMAGES_DIR": "/opt/rakuten/image-store",
    "RAKUTEN_LOOP_SERVE_PASSWORD_FILE": "/run/secrets/serve_retrain_password",
    "PGPASSFILE": "/run/secrets/pgpass",
    "MLFLOW_TRACKING_URI": "http://rakuten-mlflow:5000",
    "RAKUTEN_PUSHGATEWAY_PASSWORD_FILE": "/run/secrets/pushgateway_password",
    "AIRFLOW__WEBSERVER__SECRET_KEY_CMD": "cat /run/secrets/never-in-a-pod",
}
GPU_ENV = {
    "RAKUTEN_LOOP_TRAIN_GPUS": "1",
    "RAKUTEN_LOOP_TRAIN_NODE_SELECTOR": "pool=gpu",
    "RAKUTEN_LOOP_TRAIN_TOLERATIONS": "dedicated=training:NoSchedule",
}
SCRIPT = r"""
import importlib, json, os, sys
from datetime import UTC, datetime
from kubernetes.client import ApiClient

sys.path.insert(0, os.getcwd())
scenarios = json.loads(sys.argv[1])
XCOMS = {
    "export_feedback": 1767225600.0,
    "register_challenger": {"version": "7", "model_version": "7"},
    "gate": {"promote": True, "challenger": {"version": "7"}, "champion": {"version": "6"},
             "reason": "better by 0.02"},
    "reload_serve": "7",
}

class TI:
    def __init__(self, task_id):
        self.dag_id, self.task_id = "rakuten_retrain", task_id
        self.map_index, self.try_number = -1, 1
        self.start_date = datetime(2026, 1, 10, tzinfo=UTC)
    def xcom_pull(self, task_ids):
        return XCOMS.get(task_ids)

class Run:
    conf = {"trigger": "alertmanager", "alerts": ["RakutenDriftAboveThreshold"]}
    run_type = "manual"
    start_date = datetime(2026, 1, 10, tzinfo=UTC)
    def get_task_instances(self):
        return []

out = {}
os.environ["RAKUTEN_LOOP_EXECUTION"] = "kubernetes"
module = importlib.import_module("rakuten_retrain")
from rakuten_loop.pods import ENTRYPOINT
out["entrypoint"] = ENTRYPOINT
# cmds is a templated field: Jinja must leave the script as it is
gate = module.dag.get_task("gate")
out["rendered"] = [gate.render_template(part, {}) for part in gate.cmds]
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
out["kinds"] = {
    t.task_id: "KubernetesPodOperator" if isinstance(t, KubernetesPodOperator) else type(t).__name__
    for t in module.dag.tasks
}
base = dict(os.environ)
for name, extra in scenarios.items():
    os.environ.clear()
    os.environ.update(base | extra)
    pods = {}
    for task in module.dag.tasks:
        if not hasattr(task, "prepare"):
            continue
        context = {"run_id": "%s", "dag_run": Run(), "ti": TI(task.task_id), "dag": module.dag}
        step = task.prepare(context)
        pods[task.task_id] = ApiClient().sanitize_for_serialization(
            task.build_pod_request_obj(context)
        )
    out[name] = pods
for value in ("", "local", "Kubernetes", "k8s"):
    os.environ["RAKUTEN_LOOP_EXECUTION"] = value
    try:
        module = importlib.reload(module)
    except ValueError as exc:
        out[f"mode {value}"] = str(exc)
    else:
        out[f"mode {value}"] = {t.task_id: type(t).__name__ for t in module.dag.tasks}
print(json.dumps(out))
""".replace('"%s"', repr(RUN_ID))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow-pods")
    (home / "kubeconfig").write_text(KUBECONFIG, encoding="utf-8")
    kubeconfig = str(home / "kubeconfig")
    connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}
    done = subprocess.run(
        [str(airflow_bin("python")), "-c", SCRIPT, json.dumps({"cpu": {}, "gpu": GPU_ENV})],
        cwd=DAGS_FOLDER,
        env=airflow_env(
            home, {**WORKER_ENV, "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(connection)}
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _step(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    return container  # type: ignore[no-any-return]


def test_the_kubernetes_dag_follows_the_house_rules(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(airflow_bin("python")), str(REPO_ROOT / "airflow" / "check_dags.py"),
         str(DAGS_FOLDER)],
        env=airflow_env(tmp_path, {"RAKUTEN_LOOP_EXECUTION": "kubernetes"}),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["problems"] == [] and done.returncode == 0
    assert set(result["dags"]["rakuten_retrain"]) == set(HEAVY) | set(LIGHT)


def test_jinja_leaves_the_entry_script_alone(rendered: dict[str, Any]) -> None:
    command = rendered["rendered"]
    assert command[:2] == ["bash", "-c"] and command[3] == "rakuten-step"
    assert command[2].rstrip("\n") == rendered["entrypoint"].rstrip("\n")


def test_the_heavy_steps_are_pods_and_the_light_ones_stay(rendered: dict[str, Any]) -> None:
    kinds = rendered["kinds"]
    assert {t: kinds[t] for t in HEAVY} == dict.fromkeys(HEAVY, "KubernetesPodOperator")
    assert set(rendered["cpu"]) == set(HEAVY)
    for task, kind in LIGHT.items():
        assert kinds[task] == kind


@pytest.mark.parametrize("scenario", ["cpu", "gpu"])
def test_every_pod_is_a_valid_pod_of_kubernetes_1_35(
    rendered: dict[str, Any], scenario: str
) -> None:
    for task, pod in rendered[scenario].items():
        try:
            kubernetes_validate.validate(pod, "1.35.0", strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover (the failure)
            pytest.fail(f"{task}: {exc}")


def test_the_validator_refuses_what_the_api_server_would(rendered: dict[str, Any]) -> None:
    pod = json.loads(json.dumps(rendered["cpu"]["gate"]))
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.35.0", strict=True)


def test_the_pods_run_the_steps_command_lines(rendered: dict[str, Any]) -> None:
    pods = rendered["cpu"]
    args = {task: _step(pod)["args"] for task, pod in pods.items()}
    assert args["export_feedback"] == [
        "rakuten-data", "export-feedback",
        "--database-url", WORKER_ENV["RAKUTEN_LOOP_DATABASE_URL"],
        "--images-dir", "/opt/rakuten/image-store", "--out", "data/feedback",
    ]  # fmt: skip
    assert args["run_pipeline"] == ["dvc", "repro", "evaluate"]
    assert args["register_challenger"] == [
        "rakuten-train", "register", "--out", f"{RUN_DIR}/register.json"
    ]  # fmt: skip
    assert args["gate"] == [
        "rakuten-train", "gate", "--version", "7", "--trigger", "alertmanager",
        "--out", f"{RUN_DIR}/gate.json", "--alert", "RakutenDriftAboveThreshold",
    ]  # fmt: skip
    assert args["promote"][:6] == [
        "rakuten-train", "promote", "--version", "7", "--expect-champion", "6"
    ]  # fmt: skip
    report = args["report"]
    assert report[:5] == ["rakuten-train", "report-retrain", "--outcome", "refused", "--started-at"]
    assert ["--gate", f"{RUN_DIR}/gate.json"] == report[6:8]  # the gate's XCom says it wrote one
    assert "--served-version" in report and "--schedule-period-s" in report
    for task, pod in pods.items():
        step = _step(pod)
        assert step["image"] == IMAGE and step["command"][:2] == ["bash", "-c"]
        env = {e["name"]: e["value"] for e in step["env"]}
        assert env["HOME"] == "/tmp" and env["RAKUTEN_STEP_WORKDIR"] == WORKDIR
        assert env["RAKUTEN_STEP_BIN"] == "/opt/rakuten/venv/bin"
        assert env["PGPASSFILE"] == "/run/secrets/pgpass"
        assert env["MLFLOW_TRACKING_URI"] == "http://rakuten-mlflow:5000"
        # the worker's own settings stay with the worker
        assert not [n for n in env if n.startswith(("AIRFLOW", "RAKUTEN_LOOP_"))], task
        assert "PATH" not in env
    assert {e["name"]: e["value"] for e in _step(pods["run_pipeline"])["env"]}[
        "RAKUTEN_TRAIN_REGISTER"
    ] == "false"
    gate_env = {e["name"]: e["value"] for e in _step(pods["gate"])["env"]}
    assert gate_env["RAKUTEN_STEP_OK_CODES"] == "0 3"
    assert gate_env["RAKUTEN_STEP_OUT"] == f"{RUN_DIR}/gate.json"
    assert gate_env["RAKUTEN_STEP_RESULT"] == "/airflow/xcom/return.json"


def test_the_pods_mount_the_platforms_claims_and_secret(rendered: dict[str, Any]) -> None:
    for task, pod in rendered["cpu"].items():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "rakuten-data"
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "rakuten-models"
        secret = volumes["secrets"]["secret"]
        assert secret["secretName"] == "rakuten-airflow-loop"
        assert {i["key"] for i in secret["items"]} == {"pgpass", "pushgateway_password"}
        assert volumes["mlflow-credentials"]["secret"]["items"] == [
            {"key": "credentials", "path": "credentials"}
        ]
        mounts = {m["mountPath"]: m for m in _step(pod)["volumeMounts"]}
        assert mounts[WORKDIR]["subPath"] == "pipeline"
        (init,) = pod["spec"]["initContainers"]  # makes the subPath folders as the pod's user
        assert init["command"] == ["mkdir", "-p", "/claim/pipeline", "/claim/models",
                                   "/claim/reports"]  # fmt: skip
        assert init["volumeMounts"] == [{"name": "models", "mountPath": "/claim"}]
        assert mounts[f"{WORKDIR}/data"]["name"] == "data"
        assert mounts[f"{WORKDIR}/models"]["subPath"] == "models"
        assert mounts[f"{WORKDIR}/reports"]["subPath"] == "reports"
        assert mounts["/run/secrets"]["readOnly"] and mounts["/tmp/.mlflow"]["readOnly"]
        assert mounts["/tmp"]["name"] == "tmp" and "emptyDir" in volumes["tmp"]
        assert mounts["/airflow/xcom"]["name"] == "xcom"
        store = mounts.get("/opt/rakuten/image-store")
        if task == "export_feedback":
            assert store is not None and store["readOnly"]
            claim = volumes["image-store"]["persistentVolumeClaim"]
            assert claim == {"claimName": "rakuten-image-store", "readOnly": True}
        else:
            assert store is None and "image-store" not in volumes
        assert pod["metadata"]["namespace"] == "rakuten"


def test_every_container_runs_hardened(rendered: dict[str, Any]) -> None:
    for task, pod in rendered["cpu"].items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["fsGroup"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        names = [c["name"] for c in spec["initContainers"] + spec["containers"]]
        assert names == ["claim-folders", "base", "airflow-xcom-sidecar"], task
        for container in spec["initContainers"] + spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (task, container["name"])
            assert context["allowPrivilegeEscalation"] is False
            assert context["runAsNonRoot"] is True and context["privileged"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["image"] == IMAGE  # the sidecar too: not Docker Hub's alpine
            assert container["resources"]["limits"]["memory"]


def test_training_asks_for_a_gpu_only_when_told(rendered: dict[str, Any]) -> None:
    cpu, gpu = rendered["cpu"]["run_pipeline"], rendered["gpu"]["run_pipeline"]
    assert "nvidia.com/gpu" not in _step(cpu)["resources"]["limits"]
    assert _step(cpu)["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert "nodeSelector" not in cpu["spec"] and "tolerations" not in cpu["spec"]
    assert _step(gpu)["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "1"}
    assert gpu["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert gpu["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    # the other steps keep the small defaults and no GPU
    for task, pod in rendered["gpu"].items():
        if task != "run_pipeline":
            assert _step(pod)["resources"] == {
                "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}
            }, task  # fmt: skip
            assert "nodeSelector" not in pod["spec"]


def test_the_mode_is_local_by_default_and_a_bad_one_is_refused(rendered: dict[str, Any]) -> None:
    for value in ("", "local"):
        kinds = rendered[f"mode {value}"]
        assert set(kinds.values()) == {"PythonOperator", "BranchPythonOperator"}
    assert rendered["mode Kubernetes"]["run_pipeline"] == "StepPodOperator"
    assert rendered["mode k8s"] == (
        "RAKUTEN_LOOP_EXECUTION must be one of ('local', 'kubernetes'), got 'k8s'"
    )


def _pipeline_checkout(path: Path) -> Path:
    path.mkdir()
    (path / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    (path / "params.yaml").write_text("seed: 1\n", encoding="utf-8")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "pipeline"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    return path


def _entry(
    rendered: dict[str, Any], tmp_path: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "GIT_"))}
    return subprocess.run(
        ["bash", "-c", rendered["entrypoint"], "rakuten-step", *args],
        env={**base, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_entry_script_prepares_the_copy_and_hands_back_the_result(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    source = _pipeline_checkout(tmp_path / "pipeline")
    workdir, result = tmp_path / "project", tmp_path / "return.json"
    (tmp_path / "pgpass").write_text("db:5432:rakuten:airflow:pw\n", encoding="utf-8")
    (tmp_path / "pgpass").chmod(0o640)
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    out = workdir / "reports" / "loop" / "run" / "gate.json"
    script = (
        "import json, os, pathlib, stat, sys; "
        f"pathlib.Path({str(out)!r}).write_text(json.dumps({{"
        "'cwd': os.getcwd(), 'steps': [n for n in os.environ if n.startswith('RAKUTEN_STEP')], "
        "'path': os.environ['PATH'].split(':')[0], 'pgpass': os.environ['PGPASSFILE'], "
        "'mode': stat.S_IMODE(os.stat(os.environ['PGPASSFILE']).st_mode), "
        "'params': os.path.isfile('params.yaml')})); sys.exit(3)"
    )
    env = {
        "RAKUTEN_STEP_WORKDIR": str(workdir),
        "RAKUTEN_STEP_PIPELINE": str(source),
        "RAKUTEN_STEP_PREPARE": str(REPO_ROOT / "airflow" / "bin" / "pipeline-workdir.sh"),
        "RAKUTEN_STEP_BIN": str(bin_dir),
        "RAKUTEN_STEP_RUN_DIR": str(out.parent),
        "RAKUTEN_STEP_OUT": str(out),
        "RAKUTEN_STEP_RESULT": str(result),
        "PGPASSFILE": str(tmp_path / "pgpass"),
    }
    refused = _entry(rendered, tmp_path, [sys.executable, "-c", script], env)
    assert refused.returncode == 3 and not result.exists()  # exit 3 is not accepted by default
    accepted = _entry(
        rendered, tmp_path, [sys.executable, "-c", script], {**env, "RAKUTEN_STEP_OK_CODES": "0 3"}
    )
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    seen = json.loads(result.read_text(encoding="utf-8"))
    assert seen["cwd"] == str(workdir) and seen["params"] and seen["steps"] == []
    assert seen["path"] == str(bin_dir)
    assert seen["pgpass"] == str(tmp_path / "home" / ".pgpass") and seen["mode"] == 0o600
    assert stat.S_IMODE((tmp_path / "pgpass").stat().st_mode) == 0o640  # the Secret untouched
    failed = _entry(rendered, tmp_path, ["false"], env)
    assert failed.returncode == 1 and "exited with 1" in failed.stderr


def test_pod_settings_refuse_what_they_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(DAGS_FOLDER))
    try:
        from rakuten_loop.config import PodSettings  # plain Python: the project's venv will do
    finally:
        sys.path.remove(str(DAGS_FOLDER))
    for name in list(os.environ):
        if name.startswith(("RAKUTEN_LOOP_POD_", "RAKUTEN_LOOP_TRAIN_")):
            monkeypatch.delenv(name)
    with pytest.raises(ValueError, match="RAKUTEN_LOOP_POD_IMAGE must name"):
        PodSettings.from_env()
    monkeypatch.setenv("RAKUTEN_LOOP_POD_IMAGE", IMAGE)
    monkeypatch.setenv("RAKUTEN_LOOP_TRAIN_TOLERATIONS", "gpu:Sometimes")
    with pytest.raises(ValueError, match="RAKUTEN_LOOP_TRAIN_TOLERATIONS must be key"):
        PodSettings.from_env()
    monkeypatch.setenv("RAKUTEN_LOOP_TRAIN_TOLERATIONS", "gpu:NoExecute,pool=a100")
    monkeypatch.setenv("RAKUTEN_LOOP_POD_LIMITS", "memory")
    with pytest.raises(ValueError, match="RAKUTEN_LOOP_POD_LIMITS must be key=value"):
        PodSettings.from_env()
    monkeypatch.delenv("RAKUTEN_LOOP_POD_LIMITS")
    settings = PodSettings.from_env()
    assert settings.train_tolerations == (("gpu", "", "NoExecute"), ("pool", "a100", ""))
    assert settings.limits == {"memory": "2Gi"} and settings.fullname == "rakuten"
