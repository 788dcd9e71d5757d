"""Batch jobs' settings from the environment: train and predict read the same .env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rakuten_core.job_settings import JobSettings
from rakuten_predict.settings import PredictSettings
from rakuten_train.settings import TrainSettings
from tests.utils.paths import REPO_ROOT

_VARS = (
    "MLFLOW_TRACKING_URI",
    "RAKUTEN_PUSHGATEWAY_URL",
    "RAKUTEN_PUSHGATEWAY_TIMEOUT_S",
    "RAKUTEN_MLFLOW_EXPERIMENT",
    "RAKUTEN_REGISTERED_MODEL_NAME",
    "RAKUTEN_MODEL_PATH",
    "RAKUTEN_RAW_DIR",
    "RAKUTEN_BUNDLE_DIR",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's checkout


def test_defaults_push_nothing_and_use_the_local_store() -> None:
    settings = TrainSettings()
    assert settings.pushgateway_url is None
    assert settings.mlflow_tracking_uri is None
    assert settings.mlflow_experiment == "rakuten-train"
    assert settings.registered_model_name is None
    assert settings.bundle_dir == Path("models/current")
    assert PredictSettings().model_path == "models/current"


def test_environment_drives_every_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("RAKUTEN_PUSHGATEWAY_URL", "http://pushgateway:9091")
    monkeypatch.setenv("RAKUTEN_MLFLOW_EXPERIMENT", "rakuten-prod")
    monkeypatch.setenv("RAKUTEN_REGISTERED_MODEL_NAME", "rakuten-prod-model")
    monkeypatch.setenv("RAKUTEN_MODEL_PATH", "models:/rakuten-prod-model@champion")
    monkeypatch.setenv("RAKUTEN_RAW_DIR", "/data/raw")
    train, predict = TrainSettings(), PredictSettings()
    for settings in (train, predict):
        assert settings.mlflow_tracking_uri == "http://mlflow:5000"
        assert settings.pushgateway_url == "http://pushgateway:9091"
    assert train.mlflow_experiment == "rakuten-prod"
    assert train.registered_model_name == "rakuten-prod-model"
    assert train.raw_dir == Path("/data/raw")
    assert predict.model_path == "models:/rakuten-prod-model@champion"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000\nRAKUTEN_PUSHGATEWAY_URL=127.0.0.1:9091\n"
    )
    settings = JobSettings()
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.pushgateway_url == "127.0.0.1:9091"


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.setenv("RAKUTEN_PUSHGATEWAY_URL", "  ")
    monkeypatch.setenv("RAKUTEN_REGISTERED_MODEL_NAME", "")
    settings = TrainSettings()
    assert settings.mlflow_tracking_uri is None and settings.pushgateway_url is None
    assert settings.registered_model_name is None


def test_env_example_documents_every_job_setting_and_loads(tmp_path: Path) -> None:
    example = REPO_ROOT / ".env.example"
    text = example.read_text()
    for cls in (TrainSettings, PredictSettings):
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            env = "MLFLOW_TRACKING_URI" if alias is not None else f"RAKUTEN_{name.upper()}"
            assert re.search(rf"^#? ?{env}=", text, re.MULTILINE), f"{env} not in .env.example"
    (tmp_path / ".env").write_text(text)  # copied as the README says: the defaults hold
    train, predict = TrainSettings(), PredictSettings()
    assert train.pushgateway_url is None and train.registered_model_name is None
    assert train.mlflow_experiment == "rakuten-train"
    assert predict.model_path == "models/current"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RAKUTEN_PUSHGATEWAY_TIMEOUT_S", "0"),
        ("RAKUTEN_PUSHGATEWAY_TIMEOUT_S", "soon"),
        ("RAKUTEN_MLFLOW_EXPERIMENT", ""),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        TrainSettings()
