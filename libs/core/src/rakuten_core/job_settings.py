"""Settings every batch job shares (train, evaluate, predict): MLflow and the Pushgateway.

Each job's own class (``TrainSettings``, ``PredictSettings``) extends :class:`JobSettings`, so one
``.env`` drives every container the same way. ``MLFLOW_TRACKING_URI`` keeps MLflow's own name;
it is read here too (and not only by MLflow from the process environment) so that a value set in
``.env`` reaches the jobs as well.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from rakuten_core.settings import RakutenSettings


class JobSettings(RakutenSettings):
    """Infrastructure of a batch job (env prefix ``RAKUTEN_``)."""

    model_config = SettingsConfigDict(populate_by_name=True)

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking and registry URI; a local SQLite store when unset.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Pushgateway the job pushes its run figures to (host:port or URL); unset "
        "or empty = no push.",
    )
    pushgateway_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Longest wait for one push."
    )
    pushgateway_username: str = Field(
        default="", description="Basic-auth user of the Pushgateway; empty = no authentication."
    )
    pushgateway_password_file: Path | None = Field(
        default=None, description="File holding that user's password (the compose stack's)."
    )

    def pushgateway_auth(self) -> tuple[str, str] | None:
        """(user, password) for the Pushgateway, read from the password file; None without."""
        if not self.pushgateway_username or self.pushgateway_password_file is None:
            return None
        password = self.pushgateway_password_file.read_text(encoding="utf-8").strip()
        return self.pushgateway_username, password

    @field_validator("mlflow_tracking_uri", "pushgateway_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``VAR=`` in ``.env`` (the example file's way of showing a variable) means unset."""
        if isinstance(value, str) and not value.strip():
            return None
        return value
