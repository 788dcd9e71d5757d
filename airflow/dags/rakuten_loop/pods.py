"""The DAG's steps as Kubernetes pods (``RAKUTEN_LOOP_EXECUTION=kubernetes``).

Every step that runs the project's CLIs becomes a pod of ``RAKUTEN_LOOP_POD_IMAGE``, with the
arguments, the environment (:func:`rakuten_loop.commands.step_environment`) and the paths of the
local execution. The image is the Airflow image (airflow/Dockerfile): the only one holding
``rakuten-data``, ``rakuten-train``, ``dvc``, git and the pipeline's checkout together (the root
Dockerfile's service images have one CLI each, no ``dvc`` and no ``dvc.yaml``). In the pod:

- the working copy (``RAKUTEN_LOOP_WORKDIR``) is the folder ``pipeline`` of the models claim,
  set to the image's code at every start by the image's ``pipeline-workdir.sh``, as the compose
  scheduler does: dvc.lock and the DVC cache persist, so ``dvc repro`` reruns only what changed;
- ``data/`` is the data claim; ``models/`` and ``reports/`` the folders of the models claim (as
  the platform chart's train Job mounts them); serve's image store is mounted read-only, for
  the feedback export only;
- ``pgpass`` and ``pushgateway_password`` of the Secret ``<fullname>-airflow-loop`` are files in
  /run/secrets, its ``credentials`` is ~/.mlflow/credentials (HOME is /tmp); the serve password
  stays with the worker, which reloads serve itself;
- non-root (uid 10001), read-only root file system, no privilege escalation, every capability
  dropped, RuntimeDefault seccomp, no service account token; /tmp and /var/tmp are emptyDirs.

A step's result document (:attr:`Step.out`) comes back as the pod's XCom: the entry script
copies it to /airflow/xcom/return.json, which the operator's sidecar hands to Airflow.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from rakuten_loop.commands import Step, StepSpec, step_environment
from rakuten_loop.config import LoopConfig, PodSettings

# The Airflow image's layout (airflow/Dockerfile)
PIPELINE_SOURCE = "/opt/rakuten/pipeline"
PREPARE_SCRIPT = "/opt/airflow/bin/pipeline-workdir.sh"
SECRETS_DIR = "/run/secrets"
SECRET_FILES = ("pgpass", "pushgateway_password")
XCOM_RESULT = "/airflow/xcom/return.json"
SIDECAR = "airflow-xcom-sidecar"
GPU = "nvidia.com/gpu"
MODELS_CLAIM_FOLDERS = ("pipeline", "models", "reports")  # the working copy; the train Job's

# The pod's command: `bash -c ENTRYPOINT rakuten-step ARGS...`; ARGS are the step's own.
# git refuses a repository its user does not own (the claim's folder may be root's): the
# working copy and the image's checkout are declared safe in ~/.gitconfig, which dvc's git
# libraries read too. libpq ignores a password file that others may read (fsGroup makes the
# Secret's files group-readable): the step gets a private copy.
ENTRYPOINT = r"""set -euo pipefail
workdir=$RAKUTEN_STEP_WORKDIR
git config --global --add safe.directory "$workdir"
git config --global --add safe.directory "$RAKUTEN_STEP_PIPELINE"
bash "$RAKUTEN_STEP_PREPARE" "$RAKUTEN_STEP_PIPELINE" "$workdir" >&2
cd "$workdir"
if [[ -n "${RAKUTEN_STEP_RUN_DIR:-}" ]]; then mkdir -p "$RAKUTEN_STEP_RUN_DIR"; fi
if [[ -n "${PGPASSFILE:-}" && -r "${PGPASSFILE:-}" ]]; then
  install -m 0600 "$PGPASSFILE" "$HOME/.pgpass"
  export PGPASSFILE="$HOME/.pgpass"
fi
if [[ -n "${RAKUTEN_STEP_BIN:-}" ]]; then
  export PATH="$RAKUTEN_STEP_BIN:$PATH" VIRTUAL_ENV="${RAKUTEN_STEP_BIN%/bin}"
fi
ok=" ${RAKUTEN_STEP_OK_CODES:-0} " out=${RAKUTEN_STEP_OUT:-} result=${RAKUTEN_STEP_RESULT:-}
unset "${!RAKUTEN_STEP_@}"
code=0
"$@" || code=$?
if [[ "$ok" != *" $code "* ]]; then
  echo "rakuten-step: ${1:-} ${2:-} exited with $code" >&2
  exit "$code"
fi
if [[ -n "$out" && -n "$result" ]]; then cp "$out" "$result"; fi
"""


def pod_environment(config: LoopConfig, step: Step) -> dict[str, str]:
    """The step's environment in its pod: the worker's allow-listed variables (the image sets
    its own PATH; HOME is the pod's /tmp), the step's own, and the entry script's."""
    env = step_environment(os.environ)
    for name in ("PATH", "HOME", "TMPDIR"):
        env.pop(name, None)
    env.update(step.extra_env)
    env.update(
        {
            "HOME": "/tmp",
            "RAKUTEN_STEP_WORKDIR": str(config.workdir),
            "RAKUTEN_STEP_PIPELINE": PIPELINE_SOURCE,
            "RAKUTEN_STEP_PREPARE": PREPARE_SCRIPT,
            "RAKUTEN_STEP_OK_CODES": " ".join(str(code) for code in step.ok_codes),
        }
    )
    if config.bin_dir is not None:
        env["RAKUTEN_STEP_BIN"] = str(config.bin_dir)
    if step.run_dir is not None:
        env["RAKUTEN_STEP_RUN_DIR"] = str(step.run_dir)
    if step.out is not None:
        env["RAKUTEN_STEP_OUT"] = str(step.out)
        env["RAKUTEN_STEP_RESULT"] = XCOM_RESULT
    return env


def container_security_context() -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


def _claim(name: str, claim: str, *, read_only: bool = False) -> k8s.V1Volume:
    source = k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim, read_only=read_only)
    return k8s.V1Volume(name=name, persistent_volume_claim=source)


def _tolerations(items: tuple[tuple[str, str, str], ...]) -> list[k8s.V1Toleration]:
    return [
        k8s.V1Toleration(
            key=key,
            operator="Equal" if value else "Exists",
            value=value or None,
            effect=effect or None,
        )
        for key, value, effect in items
    ]


def _storage(config: LoopConfig, pods: PodSettings, spec: StepSpec) -> dict[str, Any]:
    secret = f"{pods.fullname}-airflow-loop"
    workdir = config.workdir
    volumes = [
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=pods.tmp_size)),
        k8s.V1Volume(name="var-tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="1Gi")),
        _claim("data", f"{pods.fullname}-data"),
        _claim("models", f"{pods.fullname}-models"),
        k8s.V1Volume(
            name="secrets",
            secret=k8s.V1SecretVolumeSource(
                secret_name=secret,
                default_mode=0o440,
                items=[k8s.V1KeyToPath(key=key, path=key) for key in SECRET_FILES],
            ),
        ),
        k8s.V1Volume(
            name="mlflow-credentials",
            secret=k8s.V1SecretVolumeSource(
                secret_name=secret,
                default_mode=0o440,
                items=[k8s.V1KeyToPath(key="credentials", path="credentials")],
            ),
        ),
    ]
    mounts = [
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        # DVC's site cache
        k8s.V1VolumeMount(name="var-tmp", mount_path="/var/tmp"),
        k8s.V1VolumeMount(name="models", mount_path=str(workdir), sub_path="pipeline"),
        k8s.V1VolumeMount(name="data", mount_path=str(workdir / "data")),
        k8s.V1VolumeMount(name="models", mount_path=str(workdir / "models"), sub_path="models"),
        k8s.V1VolumeMount(name="models", mount_path=str(workdir / "reports"), sub_path="reports"),
        k8s.V1VolumeMount(name="secrets", mount_path=SECRETS_DIR, read_only=True),
        k8s.V1VolumeMount(name="mlflow-credentials", mount_path="/tmp/.mlflow", read_only=True),
    ]
    # kubelet would make a missing subPath folder root's (and unwritable): the pod's own user
    # makes them first, in the claim's root, which fsGroup lets it write
    folders = k8s.V1Container(
        name="claim-folders",
        image=pods.image,
        image_pull_policy=pods.pull_policy,
        command=["mkdir", "-p", *(f"/claim/{sub}" for sub in MODELS_CLAIM_FOLDERS)],
        volume_mounts=[k8s.V1VolumeMount(name="models", mount_path="/claim")],
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"memory": "64Mi"}
        ),
    )
    if spec.images and config.images_dir is not None:
        volumes.append(_claim("image-store", f"{pods.fullname}-image-store", read_only=True))
        mounts.append(
            k8s.V1VolumeMount(name="image-store", mount_path=str(config.images_dir), read_only=True)
        )
    return {"volumes": volumes, "volume_mounts": mounts, "init_containers": [folders]}


def pod_attributes(config: LoopConfig, spec: StepSpec, step: Step) -> dict[str, Any]:
    """The KubernetesPodOperator attributes of ``step``'s pod (beside the command)."""
    pods = config.pods
    if pods is None:
        raise AirflowFailException(
            "the DAG was parsed with RAKUTEN_LOOP_EXECUTION=kubernetes but this worker's "
            "environment says otherwise: every Airflow component needs the same settings"
        )
    requests = dict(pods.train_requests if spec.train else pods.requests)
    limits = dict(pods.train_limits if spec.train else pods.limits)
    node_selector = dict(pods.node_selector)
    tolerations = list(pods.tolerations)
    if spec.train:
        node_selector.update(pods.train_node_selector)
        tolerations += pods.train_tolerations
        if pods.train_gpus:
            limits[GPU] = str(pods.train_gpus)
            # GPU pools are usually tainted so: tolerated whenever GPUs are asked for
            tolerations.append((GPU, "", "NoSchedule"))
    env = pod_environment(config, step)
    return {
        "image": pods.image,
        "image_pull_policy": pods.pull_policy,
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=n) for n in pods.pull_secrets],
        "namespace": pods.namespace,
        "service_account_name": pods.service_account,
        "startup_timeout_seconds": pods.startup_timeout_s,
        "arguments": list(step.args),
        "env_vars": [k8s.V1EnvVar(name=k, value=v) for k, v in sorted(env.items())],
        "container_resources": k8s.V1ResourceRequirements(requests=requests, limits=limits),
        "node_selector": node_selector or None,
        "tolerations": _tolerations(tuple(tolerations)) or None,
        "security_context": k8s.V1PodSecurityContext(
            run_as_user=pods.uid,
            run_as_group=pods.uid,
            run_as_non_root=True,
            fs_group=pods.uid,
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": container_security_context(),
        **_storage(config, pods, spec),
    }


class StepPodOperator(KubernetesPodOperator):  # type: ignore[misc]  # Airflow is untyped here
    """A step in its own pod; the task returns what the local task returns."""

    def __init__(self, *, steps: StepSpec, **kwargs: Any) -> None:
        super().__init__(
            cmds=["bash", "-c", ENTRYPOINT, "rakuten-step"],
            do_xcom_push=True,
            get_logs=True,
            on_finish_action="delete_pod",
            labels={"app.kubernetes.io/part-of": "rakuten", "app.kubernetes.io/name": "retrain"},
            **kwargs,
        )
        self.steps = steps

    def prepare(self, context: dict[str, Any]) -> Step | None:
        """Build the step from the settings and the run; None when there is nothing to run."""
        config = LoopConfig.from_env()
        step = self.steps.build(config, context)
        if step is not None:
            for name, value in pod_attributes(config, self.steps, step).items():
                setattr(self, name, value)
        return step

    def execute(self, context: dict[str, Any]) -> Any:
        step = self.prepare(context)
        result = super().execute(context) if step is not None else None
        return self.steps.done(context, result) if self.steps.done else result

    def build_pod_request_obj(self, context: dict[str, Any] | None = None) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context)
        pod.spec.automount_service_account_token = False
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            container.security_context = container_security_context()
            if container.name == SIDECAR:  # the step's image, not Docker Hub's alpine
                container.image = self.image
                container.image_pull_policy = self.image_pull_policy
                container.resources = k8s.V1ResourceRequirements(
                    requests={"cpu": "10m", "memory": "16Mi"}, limits={"memory": "64Mi"}
                )
        return pod
