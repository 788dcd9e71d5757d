"""Every service reads `.env.example` as `cp .env.example .env` gives it to a local run."""

from __future__ import annotations

import os

import pytest
from pydantic_settings import BaseSettings

from rakuten_data.settings import DataSettings
from rakuten_monitor.settings import MonitorSettings
from rakuten_predict.settings import PredictSettings
from rakuten_serve.settings import ServeSettings
from rakuten_train.settings import TrainSettings
from tests.utils.paths import REPO_ROOT

ENV_EXAMPLE = REPO_ROOT / ".env.example"


@pytest.mark.parametrize(
    "settings_class", [ServeSettings, MonitorSettings, DataSettings, PredictSettings, TrainSettings]
)
def test_each_service_loads_the_documented_example(
    settings_class: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("RAKUTEN_"):
            monkeypatch.delenv(name)
    settings = settings_class(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.environment == "development"  # type: ignore[attr-defined]


def test_serve_reads_the_example_lists_and_an_empty_key_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAKUTEN_JWT_SECRET", raising=False)
    monkeypatch.setenv("RAKUTEN_SERVICE_ACCOUNTS", "retrain-bot, other ")
    settings = ServeSettings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.image_formats == frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
    assert settings.service_accounts == frozenset({"retrain-bot", "other"})
    assert settings.jwt_secret is None
    assert len(settings.signing_key().get_secret_value()) >= 32  # development: a random one
