"""The loop's settings, read from the environment when a task runs (never at DAG parse time).

Every variable is documented in ``.env.example`` and ``docs/lifecycle.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCHEDULE = "@monthly"


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

    @classmethod
    def from_env(cls) -> LoopConfig:
        env = os.environ
        workdir = Path(env.get("RAKUTEN_LOOP_WORKDIR", "")).expanduser()
        if not env.get("RAKUTEN_LOOP_WORKDIR") or not (workdir / "dvc.yaml").is_file():
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
