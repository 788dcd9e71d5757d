"""Training settings: infrastructure from ``RAKUTEN_*`` / ``MLFLOW_TRACKING_URI`` (or ``.env``).

Where the data, bundle, reports and ``params.yaml`` are, which MLflow experiment and registered
model name the runs use, where the Pushgateway is: everything a container needs to differ from
a laptop. Tunables (epochs, sizes, promotion margin) stay in ``params.yaml``. Command-line flags
override both. Every field is documented in ``.env.example``. The CLI builds its settings once
per command (one command is one process in production).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from rakuten_core.job_settings import JobSettings

DEFAULT_EXPERIMENT = "rakuten-train"


class TrainSettings(JobSettings):
    """Settings of ``rakuten-train`` (env prefix ``RAKUTEN_``)."""

    mlflow_experiment: str = Field(
        default=DEFAULT_EXPERIMENT, min_length=1, description="MLflow experiment of the runs."
    )
    registered_model_name: str | None = Field(
        default=None,
        min_length=1,
        description="Registry name of the model; replaces params.yaml's registry.model_name "
        "(--set registry.model_name=... still wins).",
    )
    train_register: bool = Field(
        default=True,
        description="train registers its model and promotes it by the gate's test_margin; "
        "false (the retraining DAG) only logs the run: `rakuten-train register` and the gate "
        "take it from there.",
    )
    params_file: Path = Path("params.yaml")
    raw_dir: Path = Path("data/raw")
    processed_dir: Path = Path("data/processed")
    bundle_dir: Path = Field(
        default=Path("models/current"), description="Bundle train writes and evaluate reads."
    )
    reports_dir: Path = Path("reports")

    @field_validator("registered_model_name", mode="before")
    @classmethod
    def _empty_name_is_unset(cls, value: object) -> object:
        """``RAKUTEN_REGISTERED_MODEL_NAME=`` (as in ``.env.example``) keeps params.yaml's."""
        if isinstance(value, str) and not value.strip():
            return None
        return value
