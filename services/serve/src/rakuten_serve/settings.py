"""Serving settings: infrastructure from ``RAKUTEN_*`` environment variables (or ``.env``).

Every field is documented in ``.env.example``. Nothing is read at import time; the process
builds its settings once through the cached :func:`get_settings`, and tests build their own
:class:`ServeSettings` and hand them to :func:`rakuten_serve.app.create_app`.
"""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from rakuten_core.schema import DESCRIPTION_MAX_CHARS, DESIGNATION_MAX_CHARS, ImageLimits
from rakuten_core.settings import RakutenSettings, is_placeholder, require_secret

logger = logging.getLogger(__name__)

JWT_ALGORITHM = "HS256"
JWT_MIN_SECRET_CHARS = 32


class ServeSettings(RakutenSettings):
    """Settings of the prediction API (env prefix ``RAKUTEN_``)."""

    # --- security
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing the JWTs. Required outside development (>= 32 chars, "
        "not a placeholder); in development an unset secret is replaced by a random one per "
        "process (tokens then die with the process).",
    )
    jwt_expire_minutes: int = Field(default=30, gt=0, le=24 * 60)

    # --- storage
    database_url: str = Field(
        default="sqlite:///data/serve.db",
        description="SQLAlchemy URL of the users/predictions/feedback database; Postgres: "
        "postgresql+psycopg://user:password@host:5432/db.",
    )
    redis_url: str | None = Field(
        default=None, description="Rate-limit counters in Redis (shared by workers); in memory."
    )

    # --- model
    model_path: str = Field(
        default="models/current",
        description="Bundle directory, or an MLflow URI such as models:/rakuten@champion.",
    )
    model_cache_dir: Path = Field(
        default=Path("data/serve-models"), description="Where MLflow bundles are downloaded."
    )
    top_k: int = Field(default=5, ge=1, le=27)
    challenger_model_path: str = Field(
        default="",
        description="The challenger scored in shadow beside the champion (bundle directory or "
        "models:/name@challenger); empty: no challenger.",
    )
    shadow_share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of requests the challenger also scores."
    )
    shadow_queue_size: int = Field(
        default=256, ge=1, description="Requests waiting for the challenger; more are dropped."
    )

    # --- reload across the workers of a replica (rakuten_serve.reload_board)
    run_dir: Path | None = Field(
        default=None,
        description="Directory shared by the workers of one replica, where a reload is "
        "published to all of them; `rakuten-serve run` makes a fresh one when unset.",
    )
    reload_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a reload waits for every worker to follow."
    )
    reload_poll_s: float = Field(
        default=0.5, gt=0, le=10, description="How often a worker checks for a published reload."
    )

    # --- rate limits (slowapi / limits syntax: "10/minute", "100 per hour", "5/second")
    predict_rate_limit: str = "10/minute"
    token_rate_limit: str = "5/minute"
    token_user_rate_limit: str = Field(
        default="10/minute",
        description="Failed /token attempts allowed per user name (whatever the client address).",
    )
    rate_limit_enabled: bool = True
    service_accounts: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        description="Comma-separated user names of service accounts (the retraining loop's "
        "retrain-bot). They log in only from inside the stack: a /token request for one of them "
        "that came through the proxy (which marks every request with the X-Rakuten-Edge header) "
        "is refused without checking the password and without counting a failed attempt, so "
        "strangers can neither guess their password nor lock them out.",
    )

    # --- micro-batching
    batch_enabled: bool = True
    batch_max_size: int = Field(default=32, ge=1, le=1024)
    batch_max_wait_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=1000.0,
        description="Longest wait for company, only while other requests are being decoded.",
    )
    batch_queue_size: int = Field(default=256, ge=1)
    overload_retry_after_s: int = Field(default=1, ge=1)

    # --- input limits
    image_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    image_max_pixels: int = Field(default=25_000_000, gt=0)
    # NoDecode: the environment gives "JPEG,PNG" (split by the validator below), not JSON
    image_formats: Annotated[frozenset[str], NoDecode] = frozenset(
        {"JPEG", "PNG", "WEBP", "GIF", "BMP"}
    )
    designation_max_chars: int = Field(default=DESIGNATION_MAX_CHARS, gt=0)
    description_max_chars: int = Field(default=DESCRIPTION_MAX_CHARS, gt=0)

    # --- prediction records
    record_queue_size: int = Field(default=10_000, ge=1)
    record_batch_size: int = Field(default=200, ge=1)
    record_spool_dir: Path = Path("data/serve-spool")
    record_spool_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    record_journal: bool = Field(
        default=True,
        description="Append each record to a journal in the spool folder before answering "
        "(no fsync), so a killed process loses no answered record: its journal is replayed.",
    )
    record_retry_initial_s: float = Field(default=0.5, gt=0)
    record_retry_max_s: float = Field(default=30.0, gt=0)

    # --- image store (docs/serving.md "Image store": what is kept, for how long, how to purge)
    image_store_dir: Path | None = Field(
        default=None,
        description="Keep every image sent to /predict under this folder, named by its SHA-256, "
        "so feedback becomes a labelled example (rakuten-data export-feedback). Unset: off.",
    )
    image_store_max_bytes: int = Field(
        default=5 * 1024**3, gt=0, description="Size cap of the store; oldest images go first."
    )
    image_store_retention_days: float = Field(
        default=30.0, gt=0, description="Images not received again for this long are deleted."
    )
    image_store_queue_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Images waiting to be written, per process; beyond it an image is not kept.",
    )
    image_store_sweep_interval_s: float = Field(
        default=300.0, gt=0, description="How often retention and the size cap are applied."
    )

    # --- monitoring
    metrics_enabled: bool = Field(
        default=True,
        description="Prometheus metrics on /metrics (multiprocess mode with several workers); "
        "false only to measure what monitoring costs (bench/serve_monitoring_overhead.py).",
    )
    user_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long a user's enabled/scopes lookup is cached."
    )
    user_stale_max_s: float = Field(
        default=300.0,
        ge=0,
        description="While the database is down, a user looked up at most this long ago keeps "
        "access with their last known state (0: every request needs the database).",
    )

    # --- process (used by `rakuten-serve run`)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(
        default=0,
        ge=0,
        description="Worker processes of `rakuten-serve run`; 0: one per core this process may "
        "use (os.sched_getaffinity: a container's CPU set). Several replicas on one host: "
        "replicas x workers = cores (docs/serving.md).",
    )

    # --- labels (POST /feedback, scope `label`)
    feedback_rate_limit: str = Field(
        default="60/minute",
        description="Feedback answers per user (slowapi syntax): how fast one account can "
        "write training labels and move live accuracy.",
    )

    @field_validator("image_formats", mode="before")
    @classmethod
    def _formats_from_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("jwt_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        # RAKUTEN_JWT_SECRET= (.env.example's value) means "none given", as documented there
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("service_accounts", mode="before")
    @classmethod
    def _names_from_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("image_store_dir", mode="before")
    @classmethod
    def _empty_means_off(cls, value: object) -> object:
        # RAKUTEN_IMAGE_STORE_DIR= (compose's way to turn it off) must not mean the cwd
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_limits(self) -> ServeSettings:
        if self.designation_max_chars > DESIGNATION_MAX_CHARS:
            raise ValueError(f"designation_max_chars cannot exceed {DESIGNATION_MAX_CHARS}")
        if self.description_max_chars > DESCRIPTION_MAX_CHARS:
            raise ValueError(f"description_max_chars cannot exceed {DESCRIPTION_MAX_CHARS}")
        return self

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(
            max_bytes=self.image_max_bytes,
            max_pixels=self.image_max_pixels,
            formats=self.image_formats,
        )

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted before parsing (image + texts + multipart overhead)."""
        text_bytes = 4 * (self.designation_max_chars + self.description_max_chars)
        return self.image_max_bytes + text_bytes + 64 * 1024

    def signing_key(self) -> SecretStr:
        """The JWT key, checked for the environment (raises ``ConfigurationError`` if unsafe)."""
        if self.jwt_secret is None and self.environment == "development":
            logger.warning(
                "RAKUTEN_JWT_SECRET is unset: using a random per-process secret (development "
                "only; tokens are invalid after a restart and across workers)"
            )
            self.jwt_secret = SecretStr(secrets.token_urlsafe(48))
        key = require_secret(
            self.jwt_secret,
            name="RAKUTEN_JWT_SECRET",
            environment=self.environment,
            min_chars=JWT_MIN_SECRET_CHARS,
        )
        if is_placeholder(key):
            logger.warning("RAKUTEN_JWT_SECRET is a placeholder: acceptable in development only")
        return key


@lru_cache(maxsize=1)
def get_settings() -> ServeSettings:
    """The process's settings, read once from the environment."""
    return ServeSettings()
