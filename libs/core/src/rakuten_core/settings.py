"""The settings base every service's pydantic-settings class extends.

Infrastructure comes from the environment (prefix ``RAKUTEN_``; the ecosystem's own names such as
``MLFLOW_TRACKING_URI``, ``HF_TOKEN`` and ``HF_ENDPOINT`` are kept as they are), tunables come
from ``params.yaml``. Secrets have no defaults; placeholder values are refused outside
development. Nothing is read at import time: services build their settings in a cached
``get_settings()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from rakuten_core.errors import ConfigurationError
from rakuten_core.secrets import check_secret
from rakuten_core.secrets import is_placeholder as _is_placeholder_text

Environment = Literal["development", "test", "production"]

MIN_SECRET_CHARS = 32
# A folder of secret files, one per setting, named like the variable in lower case
# (rakuten_jwt_secret): the compose stack mounts its generated secrets there.
SECRETS_DIR_ENV = "RAKUTEN_SECRETS_DIR"


class RakutenSettings(BaseSettings):
    """Settings shared by every service."""

    model_config = SettingsConfigDict(
        env_prefix="RAKUTEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"
    log_dir: Path = Path("logs")
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read secret files from ``RAKUTEN_SECRETS_DIR`` when it is set (after the environment)."""
        directory = os.environ.get(SECRETS_DIR_ENV)
        if directory:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")


def require_secret(
    value: SecretStr | None, *, name: str, environment: Environment, min_chars: int = 0
) -> SecretStr:
    """Return ``value`` if it is usable as a secret in ``environment``; else raise.

    In development and test a placeholder is tolerated (with the caller's own warning); in
    production :func:`rakuten_core.secrets.check_secret` applies: set, at least ``min_chars``
    long, not a placeholder, not a value published in the repository. The secret itself is
    never put in the message.
    """
    if value is None or not value.get_secret_value():
        raise ConfigurationError(f"{name} must be set")
    if environment == "production":
        check_secret(value.get_secret_value(), name=name, min_chars=min_chars)
    return value


def is_placeholder(value: SecretStr | None) -> bool:
    """True when ``value`` is empty or a known placeholder."""
    return value is None or _is_placeholder_text(value.get_secret_value())
