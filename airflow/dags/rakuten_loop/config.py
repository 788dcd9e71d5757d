"""The loop's settings, read from the environment when a task runs (never at DAG parse time).

Every variable is documented in ``.env.example`` and ``docs/lifecycle.md``; the
``RAKUTEN_LOOP_POD_*`` and ``RAKUTEN_LOOP_TRAIN_*`` ones (the steps as pods) in the DAG's module
docstring. Two are read when Airflow parses the DAG file, since they shape the DAG itself:
``RAKUTEN_RETRAIN_SCHEDULE`` and ``RAKUTEN_LOOP_EXECUTION``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCHEDULE = "@monthly"
EXECUTIONS = ("local", "kubernetes")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def schedule_from_env() -> str | None:
    """``RAKUTEN_RETRAIN_SCHEDULE``: a cron expression or preset; ``none`` = triggered only.

    Read when Airflow parses the DAG file (a schedule cannot change per run): an environment
    variable, not an Airflow Variable, which would cost a database query at every parse.
    """
    raw = os.environ.get("RAKUTEN_RETRAIN_SCHEDULE", "").strip()
    if not raw:
        return DEFAULT_SCHEDULE
    return None if raw.lower() == "none" else raw


def execution_from_env() -> str:
    """``RAKUTEN_LOOP_EXECUTION``: ``local`` (subprocesses of the worker, compose) or
    ``kubernetes`` (one pod per step, :mod:`rakuten_loop.pods`); read at parse time."""
    raw = os.environ.get("RAKUTEN_LOOP_EXECUTION", "").strip().lower() or "local"
    if raw not in EXECUTIONS:
        raise ValueError(f"RAKUTEN_LOOP_EXECUTION must be one of {EXECUTIONS}, got {raw!r}")
    return raw


def _pairs(name: str, default: str = "") -> dict[str, str]:
    """``key=value,key=value`` (resources, node labels) as a dict."""
    raw = os.environ.get(name, default).strip()
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{name} must be key=value[,key=value...], got {raw!r}")
        out[key.strip()] = value.strip()
    return out


def _tolerations(name: str) -> tuple[tuple[str, str, str], ...]:
    """``key[=value][:Effect]`` items, as ``kubectl taint`` writes them: (key, value, effect);
    no value tolerates any value of the key, no effect every effect."""
    raw = os.environ.get(name, "").strip()
    out: list[tuple[str, str, str]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        taint, _, effect = item.partition(":")
        key, _, value = taint.partition("=")
        if not key or (effect and effect not in TAINT_EFFECTS):
            raise ValueError(
                f"{name} must be key[=value][:{'|'.join(TAINT_EFFECTS)}][,...], got {raw!r}"
            )
        out.append((key, value, effect))
    return tuple(out)


@dataclass(frozen=True)
class PodSettings:
    """How the steps run as pods: image, the platform chart's claims and Secret, scheduling."""

    image: str
    pull_policy: str
    pull_secrets: tuple[str, ...]
    namespace: str | None
    fullname: str
    service_account: str | None
    uid: int
    startup_timeout_s: int
    tmp_size: str
    requests: dict[str, str]
    limits: dict[str, str]
    node_selector: dict[str, str]
    tolerations: tuple[tuple[str, str, str], ...]
    train_requests: dict[str, str]
    train_limits: dict[str, str]
    train_gpus: int
    train_node_selector: dict[str, str]
    train_tolerations: tuple[tuple[str, str, str], ...]

    @classmethod
    def from_env(cls) -> PodSettings:
        env = os.environ
        image = env.get("RAKUTEN_LOOP_POD_IMAGE", "").strip()
        if not image:
            raise ValueError(
                "RAKUTEN_LOOP_POD_IMAGE must name the image the steps run in "
                "(the Airflow image: airflow/Dockerfile) when RAKUTEN_LOOP_EXECUTION=kubernetes"
            )
        gpus = int(env.get("RAKUTEN_LOOP_TRAIN_GPUS", "0") or "0")
        if gpus < 0:
            raise ValueError(f"RAKUTEN_LOOP_TRAIN_GPUS must be 0 or more, got {gpus}")
        return cls(
            image=image,
            pull_policy=env.get("RAKUTEN_LOOP_POD_PULL_POLICY", "").strip() or "IfNotPresent",
            pull_secrets=tuple(
                s.strip()
                for s in env.get("RAKUTEN_LOOP_POD_PULL_SECRETS", "").split(",")
                if s.strip()
            ),  # fmt: skip
            namespace=env.get("RAKUTEN_LOOP_POD_NAMESPACE", "").strip() or None,
            fullname=env.get("RAKUTEN_LOOP_POD_FULLNAME", "").strip() or "rakuten",
            service_account=env.get("RAKUTEN_LOOP_POD_SERVICE_ACCOUNT", "").strip() or None,
            uid=int(env.get("RAKUTEN_LOOP_POD_UID", "") or "10001"),
            startup_timeout_s=int(env.get("RAKUTEN_LOOP_POD_STARTUP_TIMEOUT_S", "") or "600"),
            tmp_size=env.get("RAKUTEN_LOOP_POD_TMP_SIZE", "").strip() or "4Gi",
            requests=_pairs("RAKUTEN_LOOP_POD_REQUESTS", "cpu=250m,memory=1Gi"),
            limits=_pairs("RAKUTEN_LOOP_POD_LIMITS", "memory=2Gi"),
            node_selector=_pairs("RAKUTEN_LOOP_POD_NODE_SELECTOR"),
            tolerations=_tolerations("RAKUTEN_LOOP_POD_TOLERATIONS"),
            train_requests=_pairs("RAKUTEN_LOOP_TRAIN_REQUESTS", "cpu=2,memory=8Gi"),
            train_limits=_pairs("RAKUTEN_LOOP_TRAIN_LIMITS", "memory=8Gi"),
            train_gpus=gpus,
            train_node_selector=_pairs("RAKUTEN_LOOP_TRAIN_NODE_SELECTOR"),
            train_tolerations=_tolerations("RAKUTEN_LOOP_TRAIN_TOLERATIONS"),
        )


@dataclass(frozen=True)
class LoopConfig:
    """Where the project is and how to reach the database, the registry and the replicas."""

    workdir: Path
    bin_dir: Path | None
    feedback: bool
    database_url: str
    images_dir: Path | None
    dvc_targets: tuple[str, ...]
    serve_urls: tuple[str, ...]
    serve_username: str
    serve_password_file: Path | None
    model_uri: str
    reload_timeout_s: float
    execution: str = "local"
    pods: PodSettings | None = None  # kubernetes only

    @classmethod
    def from_env(cls) -> LoopConfig:
        env = os.environ
        execution = execution_from_env()
        workdir = Path(env.get("RAKUTEN_LOOP_WORKDIR", "")).expanduser()
        # kubernetes: the working copy is a path in the step's pod, made there at its start
        present = execution != "local" or (workdir / "dvc.yaml").is_file()
        if not env.get("RAKUTEN_LOOP_WORKDIR") or not present:
            raise ValueError(
                "RAKUTEN_LOOP_WORKDIR must be the project's checkout (with dvc.yaml), got "
                f"{env.get('RAKUTEN_LOOP_WORKDIR', '')!r}"
            )
        bin_dir = env.get("RAKUTEN_LOOP_BIN", "").strip()
        images = env.get("RAKUTEN_LOOP_IMAGES_DIR", "").strip()
        password_file = env.get("RAKUTEN_LOOP_SERVE_PASSWORD_FILE", "").strip()
        return cls(
            workdir=workdir.resolve(),
            bin_dir=Path(bin_dir) if bin_dir else None,
            feedback=_flag("RAKUTEN_LOOP_FEEDBACK", True),
            database_url=env.get("RAKUTEN_LOOP_DATABASE_URL", "").strip(),
            images_dir=Path(images) if images else None,
            dvc_targets=tuple(env.get("RAKUTEN_LOOP_DVC_TARGETS", "evaluate").split()),
            serve_urls=tuple(
                u.strip() for u in env.get("RAKUTEN_LOOP_SERVE_URLS", "").split(",") if u.strip()
            ),
            serve_username=env.get("RAKUTEN_LOOP_SERVE_USERNAME", "").strip(),
            serve_password_file=Path(password_file) if password_file else None,
            model_uri=env.get(
                "RAKUTEN_LOOP_MODEL_URI", "models:/rakuten-multimodal@champion"
            ).strip(),
            reload_timeout_s=float(env.get("RAKUTEN_LOOP_RELOAD_TIMEOUT_S", "600")),
            execution=execution,
            pods=PodSettings.from_env() if execution == "kubernetes" else None,
        )

    def serve_password(self) -> str:
        """The service account's password, from its secret file (never from a variable)."""
        if self.serve_password_file is None:
            raise ValueError("RAKUTEN_LOOP_SERVE_PASSWORD_FILE is not set")
        try:
            secret = self.serve_password_file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read RAKUTEN_LOOP_SERVE_PASSWORD_FILE: {exc}") from None
        if not secret:
            raise ValueError("RAKUTEN_LOOP_SERVE_PASSWORD_FILE is empty")
        return secret
