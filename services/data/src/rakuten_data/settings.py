"""Settings of the data service: where the Hub is and how to authenticate to it.

The Hugging Face variables keep their ecosystem names (``HF_TOKEN``, ``HF_ENDPOINT``,
``HF_HUB_CACHE``) so an existing set-up works unchanged; the ``RAKUTEN_``-prefixed names are
accepted too. The token is a :class:`~pydantic.SecretStr`: it is never printed or logged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from rakuten_core.settings import RakutenSettings

DEFAULT_REPO_ID = "ndiguesene/ml-datasets-image-rakuten-ecommerce"
DEFAULT_ENDPOINT = "https://huggingface.co"


class DataSettings(RakutenSettings):  # type: ignore[misc, unused-ignore]  # core has no py.typed
    """Environment-driven configuration of ``rakuten-data``."""

    model_config = SettingsConfigDict(populate_by_name=True)

    hf_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HF_TOKEN", "RAKUTEN_HF_TOKEN")
    )
    hf_endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        validation_alias=AliasChoices("HF_ENDPOINT", "RAKUTEN_HF_ENDPOINT"),
    )
    hf_cache_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("RAKUTEN_HF_CACHE_DIR", "HF_HUB_CACHE")
    )
    hf_repo_id: str = Field(
        default=DEFAULT_REPO_ID, validation_alias=AliasChoices("RAKUTEN_HF_REPO_ID")
    )
    hf_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("RAKUTEN_HF_TIMEOUT_S")
    )

    hf_resumable_min_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("RAKUTEN_HF_RESUMABLE_MIN_BYTES"),
        description="Files this big resume across runs (rakuten_data.transfer).",
    )

    @property
    def token(self) -> str | None:
        """The raw token for the Hub client only; ``None`` means anonymous access."""
        return self.hf_token.get_secret_value() if self.hf_token else None


@lru_cache
def get_settings() -> DataSettings:
    """The process-wide settings, read from the environment on first use."""
    return DataSettings()
