"""``POST /admin/reload``: hot swap to a bundle path or an MLflow alias, with warm-up."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from rakuten_core.errors import InvalidInputError, ModelUnavailableError
from rakuten_serve.deps import AdminUser, PredictorDep, StateDep
from rakuten_serve.routers.health import model_info
from rakuten_serve.schemas import ErrorResponse, ReloadRequest, ReloadResponse

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load, warm up and swap in a model (admin scope)",
    description=(
        "Loads the bundle at `model` (a path or `models:/name@alias`), default "
        "`RAKUTEN_MODEL_PATH`, warms it up with every batch size the batcher uses, then swaps "
        "it in. Requests keep being served by the old model meanwhile; if anything fails the "
        "old model stays and the answer is 422 with the reason."
    ),
    responses={
        403: {"model": ErrorResponse, "description": "Token lacks the admin scope"},
        422: {"model": ErrorResponse, "description": "Reload failed; the old model still serves"},
    },
)
async def reload(
    user: AdminUser,
    state: StateDep,
    predictor: PredictorDep,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    spec = (body.model if body else None) or state.settings.model_path
    previous = predictor.model.metadata.model_version if predictor.ready else None
    try:
        new = await run_in_threadpool(
            predictor.reload,
            spec,
            cache_dir=state.settings.model_cache_dir,
            warm_up_batch=state.settings.batch_max_size if state.settings.batch_enabled else 1,
        )
    except ModelUnavailableError as exc:
        state.telemetry.model_reloaded(success=False)
        logger.error("reload of %s by %s failed: %s", spec, user.username, exc)
        raise InvalidInputError(f"reload failed, still serving version {previous}: {exc}") from None
    state.telemetry.model_reloaded(success=True)
    state.telemetry.model_loaded(
        name=new.metadata.model_name,
        version=new.metadata.model_version,
        run_id=new.metadata.mlflow_run_id,
        source=new.source,
        prdtypecodes=[c.code for c in new.metadata.categories],
    )
    logger.info(
        "%s reloaded the model: %s -> %s", user.username, previous, new.metadata.model_version
    )
    return ReloadResponse(previous_version=previous, model=model_info(new))
