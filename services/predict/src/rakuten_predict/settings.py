"""Batch-prediction settings: infrastructure from the environment (or ``.env``).

The model reference shares serve's variable, ``RAKUTEN_MODEL_PATH``: in a deployment the batch
job and the API should use the same model (usually ``models:/<name>@champion``). Tunables
(batch size, decode processes) stay in ``params.yaml`` and reach the CLI as flags; flags win over
settings. Every field is documented in ``.env.example``.
"""

from __future__ import annotations

from pydantic import Field

from rakuten_core.job_settings import JobSettings


class PredictSettings(JobSettings):
    """Settings of ``rakuten-predict`` (env prefix ``RAKUTEN_``)."""

    model_path: str = Field(
        default="models/current",
        min_length=1,
        description="Bundle directory, or an MLflow URI (models:/rakuten-multimodal@champion).",
    )
