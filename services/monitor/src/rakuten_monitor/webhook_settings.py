"""Settings of the alert webhook (``rakuten-monitor alert-webhook``), env prefix ``RAKUTEN_``.

Secrets are read from files (Docker secrets, never variables that ``docker inspect`` or a
crash dump would show): the bearer token Alertmanager must present, the password of the
Airflow service account the webhook triggers DAG runs with and, when Prometheus asks for basic
auth, the password the webhook reads its alerts with.

``RAKUTEN_PROMETHEUS_URL`` has no usable default on purpose: without it the webhook refuses to
start (a :class:`ConfigurationError`, exit 1), rather than start healthy and either trust every
notification or refuse all of them in silence.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from rakuten_core.errors import ConfigurationError
from rakuten_core.settings import MIN_SECRET_CHARS, RakutenSettings, require_secret

DEFAULT_RETRAIN_ALERTS = ("RakutenDriftAboveThreshold", "RakutenLiveAccuracyLow")


class WebhookSettings(RakutenSettings):
    """Where to listen, whom to trust, which alerts retrain, how to reach Prometheus and Airflow."""

    alert_webhook_host: str = Field(default="127.0.0.1", description="Bind address.")
    alert_webhook_port: int = Field(default=8080, ge=1, le=65535, description="Port.")
    alert_webhook_token_file: Path | None = Field(
        default=None, description="File holding the bearer token Alertmanager sends."
    )
    alert_webhook_retrain_alerts: str = Field(
        default=",".join(DEFAULT_RETRAIN_ALERTS),
        description="Comma-separated alert names that trigger a retrain when firing.",
    )
    alert_webhook_cooldown_s: float = Field(
        default=6 * 3600,
        ge=0,
        description="After a triggered retrain, refuse further triggers for this long (0: off).",
    )
    prometheus_url: str = Field(
        default="",
        description="Prometheus whose /api/v1/alerts must show an alert firing (required).",
    )
    prometheus_username: str = Field(default="", description="Basic-auth user, if any.")
    prometheus_password_file: Path | None = Field(
        default=None, description="File holding the basic-auth password (with the username)."
    )
    prometheus_timeout_s: float = Field(default=10.0, gt=0, le=120)
    airflow_url: str = Field(
        default="http://127.0.0.1:8080", description="Airflow webserver (its /api/v1)."
    )
    airflow_username: str = Field(default="", description="Airflow service account.")
    airflow_password_file: Path | None = Field(
        default=None, description="File holding the service account's password."
    )
    airflow_dag_id: str = Field(default="rakuten_retrain", min_length=1)
    airflow_timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("airflow_url", "prometheus_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str, info: ValidationInfo) -> str:
        if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            name = f"RAKUTEN_{(info.field_name or '').upper()}"
            raise ValueError(f"{name} must not hold credentials (use the files)")
        return value.rstrip("/")

    @property
    def retrain_alerts(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.alert_webhook_retrain_alerts.split(",") if a)

    def _secret(self, path: Path | None, name: str, min_chars: int) -> SecretStr:
        if path is None:
            raise ConfigurationError(f"{name} must be set")
        try:
            raw = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigurationError(f"{name}: cannot read the file ({exc.strerror})") from None
        return require_secret(
            SecretStr(raw), name=name, environment=self.environment, min_chars=min_chars
        )

    def webhook_token(self) -> SecretStr:
        """The token Alertmanager must send (>= 32 characters in production)."""
        return self._secret(
            self.alert_webhook_token_file, "RAKUTEN_ALERT_WEBHOOK_TOKEN_FILE", MIN_SECRET_CHARS
        )

    def airflow_password(self) -> SecretStr:
        if not self.airflow_username:
            raise ConfigurationError("RAKUTEN_AIRFLOW_USERNAME must be set")
        return self._secret(self.airflow_password_file, "RAKUTEN_AIRFLOW_PASSWORD_FILE", 0)

    def prometheus_base_url(self) -> str:
        """Prometheus' URL; required: an alert it does not show firing never retrains."""
        if not self.prometheus_url:
            raise ConfigurationError(
                "RAKUTEN_PROMETHEUS_URL must be set: the webhook retrains only on alerts "
                "Prometheus itself shows firing (e.g. http://prometheus:9090)"
            )
        return self.prometheus_url

    def prometheus_credentials(self) -> tuple[str, SecretStr] | None:
        """Basic auth for Prometheus' API, or None when it has none (no username)."""
        if not self.prometheus_username:
            if self.prometheus_password_file is not None:
                raise ConfigurationError(
                    "RAKUTEN_PROMETHEUS_PASSWORD_FILE is set without RAKUTEN_PROMETHEUS_USERNAME"
                )
            return None
        password = self._secret(
            self.prometheus_password_file, "RAKUTEN_PROMETHEUS_PASSWORD_FILE", 0
        )
        return self.prometheus_username, password
