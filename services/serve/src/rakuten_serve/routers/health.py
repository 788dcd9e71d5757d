"""``/health/live``, ``/health/ready``, ``/model`` and ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from rakuten_serve.db.engine import ping
from rakuten_serve.deps import PredictorDep, StateDep
from rakuten_serve.predictor import LoadedModel
from rakuten_serve.schemas import ErrorResponse, Liveness, ModelInfo, Readiness

router = APIRouter(tags=["health"])
_DB_PING_TIMEOUT_S = 3.0


def model_info(model: LoadedModel) -> ModelInfo:
    meta = model.metadata
    return ModelInfo(
        model_name=meta.model_name,
        model_version=meta.model_version,
        mlflow_run_id=meta.mlflow_run_id,
        created=meta.created,
        loaded_at=model.loaded_at,
        source=model.source,
        metrics=meta.metrics,
        image_size=meta.image_size,
        git_commit=meta.git_commit,
        num_classes=len(meta.categories),
    )


@router.get("/health/live", response_model=Liveness, summary="The process is up")
async def live() -> Liveness:
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Ready to predict: a model is loaded and the database answers",
    responses={503: {"model": Readiness, "description": "Not ready (see detail)"}},
)
async def ready(state: StateDep) -> JSONResponse:
    detail: list[str] = []
    model_loaded = state.predictor.ready
    if not model_loaded:
        detail.append("no model loaded")
    try:
        await asyncio.wait_for(run_in_threadpool(ping, state.engine), _DB_PING_TIMEOUT_S)
        database = True
    except Exception as exc:  # any driver error or the timeout: not ready
        database = False
        detail.append(f"database unreachable ({type(exc).__name__})")
    ok = model_loaded and database
    body = Readiness(
        status="ready" if ok else "not ready",
        model_loaded=model_loaded,
        database=database,
        detail=detail,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="Metadata of the model being served",
    responses={503: {"model": ErrorResponse, "description": "No model loaded"}},
)
async def model(predictor: PredictorDep) -> ModelInfo:
    return model_info(predictor.model)


@router.get(
    "/metrics",
    summary="Prometheus metrics of the server (every worker's, summed)",
    response_class=Response,
    responses={
        200: {
            "content": {
                CONTENT_TYPE_LATEST: {
                    "example": 'rakuten_predictions_total{prdtypecode="2583"} 12.0\n'
                }
            }
        }
    },
)
async def metrics(state: StateDep) -> Response:
    telemetry = state.telemetry
    if not telemetry.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "metrics are disabled on this server")
    # In multiprocess mode this reads every worker's files: keep it off the event loop.
    body = await run_in_threadpool(telemetry.exposition)
    return Response(body, media_type=telemetry.content_type)
