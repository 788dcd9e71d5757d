"""Request and response models of the API, with the examples OpenAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from rakuten_core.bundle_fields import HeldOutMetrics

_TOP: list[JsonValue] = [
    {
        "prdtypecode": 2583,
        "name_fr": "Equipement pour piscine",
        "name_en": "Poolside items",
        "probability": 0.91,
    },
    {
        "prdtypecode": 1302,
        "name_fr": "Jeux & jouets d'extérieur pour enfants",
        "name_en": "Outdoor game, clothing",
        "probability": 0.04,
    },
]


def _scores(weighted_f1: float, f1_2583: float) -> dict[str, JsonValue]:
    """One modality's scores in the ``/model`` example, one of the 27 classes shown."""
    pool: dict[str, JsonValue] = {
        "code": 2583,
        "name": "Poolside items",
        "precision": f1_2583,
        "recall": f1_2583,
        "f1": f1_2583,
        "support": 102,
    }
    return {
        "weighted_f1": weighted_f1,
        "macro_f1": round(weighted_f1 - 0.03, 2),
        "accuracy": weighted_f1,
        "n": 2123,
        "per_class": [pool],
    }


_METRICS: dict[str, JsonValue] = {
    "split": "test",
    "weighted_f1": 0.81,
    "macro_f1": 0.78,
    "accuracy": 0.81,
    "n": 2123,
    "text_only_weighted_f1": 0.79,
    "image_only_weighted_f1": 0.42,
    "modalities": {
        "fused": _scores(0.81, 0.94),
        "text_only": _scores(0.79, 0.93),
        "image_only": _scores(0.42, 0.61),
    },
}


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.sig",
                    "token_type": "bearer",
                    "expires_in": 1800,
                    "scopes": ["predict"],
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    scopes: list[str]


class CategoryScore(BaseModel):
    prdtypecode: int
    name_fr: str
    name_en: str
    probability: float = Field(ge=0.0, le=1.0)


class PredictionResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "request_id": "5f0c6b1e9a8d4b7c8e2f1a3b4c5d6e7f",
                    "prdtypecode": 2583,
                    "name_fr": "Equipement pour piscine",
                    "name_en": "Poolside items",
                    "probability": 0.91,
                    "top_k": _TOP,
                    "model_name": "rakuten-multimodal",
                    "model_version": "3",
                    "used_image": True,
                    "latency_ms": 41.7,
                }
            ]
        },
    )

    request_id: str = Field(description="Quote it in POST /feedback and in support requests.")
    prdtypecode: int
    name_fr: str
    name_en: str
    probability: float = Field(ge=0.0, le=1.0)
    top_k: list[CategoryScore]
    model_name: str
    model_version: str
    used_image: bool = Field(description="False when no image was sent.")
    latency_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"request_id": "5f0c6b1e9a8d4b7c8e2f1a3b4c5d6e7f", "prdtypecode": 2583}]
        },
    )

    request_id: str = Field(min_length=1, max_length=64)
    prdtypecode: int = Field(description="The true product type code.")


class FeedbackResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "5f0c6b1e9a8d4b7c8e2f1a3b4c5d6e7f",
                    "predicted_prdtypecode": 2583,
                    "true_prdtypecode": 2583,
                    "correct": True,
                }
            ]
        }
    )

    request_id: str
    predicted_prdtypecode: int
    true_prdtypecode: int
    correct: bool


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "alive"}]})

    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "model_loaded": True, "database": True, "detail": []}]
        }
    )

    status: Literal["ready", "not ready"]
    model_loaded: bool
    database: bool
    detail: list[str] = Field(default_factory=list)


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_name": "rakuten-multimodal",
                    "model_version": "3",
                    "mlflow_run_id": "0f3e1c2d4b5a69788796a5b4c3d2e1f0",
                    "created": "2026-11-23T06:00:00Z",
                    "loaded_at": "2026-11-23T07:00:00Z",
                    "source": "models:/rakuten-multimodal@champion",
                    "metrics": _METRICS,
                    "image_size": 64,
                    "git_commit": "69a6430",
                    "num_classes": 27,
                }
            ]
        },
    )

    model_name: str
    model_version: str
    mlflow_run_id: str | None
    created: datetime
    loaded_at: datetime
    source: str
    metrics: HeldOutMetrics = Field(description="The bundle's scores on the held-out test split.")
    image_size: int
    git_commit: str | None
    num_classes: int


class ReloadRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "models:/rakuten-multimodal@champion"},
                {"model": "models:/rakuten-multimodal@challenger", "role": "challenger"},
                {},
            ]
        },
    )

    model: str | None = Field(
        default=None,
        description="Bundle path or models:/name@alias; default: RAKUTEN_MODEL_PATH "
        "(RAKUTEN_CHALLENGER_MODEL_PATH for the challenger).",
    )
    role: Literal["champion", "challenger"] = Field(
        default="champion",
        description="Which model to replace: the champion answers, the challenger is scored "
        "in shadow on RAKUTEN_SHADOW_SHARE of the requests.",
    )


class WorkerModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    pid: int = Field(description="Process id of the worker.")
    model_version: str | None = Field(description="Version the worker serves for the role.")


class ReloadResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "previous_version": "2",
                    "model": {
                        "model_name": "rakuten-multimodal",
                        "model_version": "3",
                        "mlflow_run_id": "0f3e1c2d4b5a69788796a5b4c3d2e1f0",
                        "created": "2026-11-23T06:00:00Z",
                        "loaded_at": "2026-11-23T07:00:00Z",
                        "source": "models:/rakuten-multimodal@champion",
                        "metrics": _METRICS,
                        "image_size": 64,
                        "git_commit": "69a6430",
                        "num_classes": 27,
                    },
                    "role": "champion",
                    "workers": [
                        {"pid": 41, "model_version": "3"},
                        {"pid": 42, "model_version": "3"},
                    ],
                }
            ]
        },
    )

    previous_version: str | None
    model: ModelInfo
    role: Literal["champion", "challenger"] = "champion"
    workers: list[WorkerModelInfo] = Field(
        description="Every live worker of this replica and the version it now serves for the "
        "role (all equal to `model.model_version` when the answer is 200)."
    )


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "input_too_large",
                    "detail": "image is 12000000 bytes; the limit is 10485760 bytes",
                    "request_id": "5f0c6b1e9a8d4b7c8e2f1a3b4c5d6e7f",
                }
            ]
        }
    )

    error: str
    detail: Any
    request_id: str
