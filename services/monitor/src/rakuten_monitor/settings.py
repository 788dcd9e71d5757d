"""Settings of the monitor (env prefix ``RAKUTEN_``), on the shared :class:`RakutenSettings`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr

from rakuten_core.errors import ConfigurationError
from rakuten_core.settings import MIN_SECRET_CHARS, RakutenSettings, require_secret


class MonitorSettings(RakutenSettings):
    """Where the records and the reference are, how often and over how much to compare."""

    database_url: str = Field(
        default="sqlite:///data/serve.db",
        description="SQLAlchemy URL of serve's database (read only by the monitor).",
    )
    monitor_host: str = Field(default="127.0.0.1", description="Bind address of /metrics.")
    monitor_port: int = Field(default=9108, ge=1, le=65535, description="Port of /metrics.")
    monitor_interval_s: float = Field(
        default=30.0, gt=0, le=86_400, description="Seconds between two evaluations."
    )
    monitor_window: int = Field(
        default=500, ge=1, le=1_000_000, description="Latest predictions (and feedback) compared."
    )
    monitor_min_predictions: int = Field(
        default=100, ge=1, description="Fewer values of a feature in the window: no drift gauge."
    )
    monitor_min_feedback: int = Field(
        default=50, ge=1, description="Fewer feedback rows in the window: no live quality gauges."
    )
    monitor_model_path: str = Field(
        default="models/current",
        description="Bundle directory or models:/ URI whose bundle.json holds the reference.",
    )
    monitor_reference_refresh_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How often a models:/name@alias reference is looked up again: when the alias moved "
            "(a promotion), the new version's reference is loaded."
        ),
    )
    monitor_notifications_token_file: Path | None = Field(
        default=None,
        description=(
            "File holding the bearer token Alertmanager sends to /notifications and /heartbeat "
            "(the notification log); unset: no such routes."
        ),
    )

    def notifications_token(self) -> SecretStr | None:
        """The notification log's token (>= 32 characters in production); None: the log is off."""
        path = self.monitor_notifications_token_file
        if path is None:
            return None
        name = "RAKUTEN_MONITOR_NOTIFICATIONS_TOKEN_FILE"
        try:
            raw = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigurationError(f"{name}: cannot read the file ({exc.strerror})") from None
        return require_secret(
            SecretStr(raw), name=name, environment=self.environment, min_chars=MIN_SECRET_CHARS
        )


@lru_cache
def get_settings() -> MonitorSettings:
    """The process's settings, read once from the environment."""
    return MonitorSettings()
