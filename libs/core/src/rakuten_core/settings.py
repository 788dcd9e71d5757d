"""The settings base every service's pydantic-settings class extends.

Infrastructure comes from the environment (prefix ``RAKUTEN_``; the ecosystem's own names such as
``MLFLOW_TRACKING_URI``, ``HF_TOKEN`` and ``HF_ENDPOINT`` are kept as they are), tunables come
from ``params.yaml``. Secrets have no defaults; placeholder values are refused outside
development. Nothing is read at import time: services build their settings in a cached
``get_settings()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rakuten_core.errors import ConfigurationError

Environment = Literal["development", "test", "production"]

_PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "admin",
        "example",
        "dev",
        "development",
        "test",
        "xxx",
        "todo",
        "replace-me",
        "please-change",
    }
)
MIN_SECRET_CHARS = 32


class RakutenSettings(BaseSettings):
    """Settings shared by every service."""

    model_config = SettingsConfigDict(
        env_prefix="RAKUTEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"
    log_dir: Path = Path("logs")
    log_level: str = "INFO"

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")


def require_secret(
    value: SecretStr | None, *, name: str, environment: Environment, min_chars: int = 0
) -> SecretStr:
    """Return ``value`` if it is usable as a secret in ``environment``; else raise.

    In development and test a placeholder is tolerated (with the caller's own warning); in
    production the secret must be set, not a known placeholder, and at least ``min_chars`` long.
    The secret itself is never put in the message.
    """
    if value is None or not value.get_secret_value():
        raise ConfigurationError(f"{name} must be set")
    raw = value.get_secret_value()
    if environment == "production":
        if raw.strip().lower() in _PLACEHOLDERS or raw.lower().startswith(("change", "example")):
            raise ConfigurationError(f"{name} is a placeholder; set a real secret in production")
        if len(raw) < min_chars:
            raise ConfigurationError(
                f"{name} must be at least {min_chars} characters in production"
            )
    return value


def is_placeholder(value: SecretStr | None) -> bool:
    """True when ``value`` is empty or a known placeholder."""
    if value is None:
        return True
    raw = value.get_secret_value().strip().lower()
    return raw in _PLACEHOLDERS or raw.startswith(("change", "example"))
