"""``POST /admin/reload``: hot swap in every worker of the replica, with warm-up before the swap."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from rakuten_core.errors import InvalidInputError, ModelUnavailableError
from rakuten_serve.deps import AdminUser, StateDep
from rakuten_serve.routers.health import model_info
from rakuten_serve.schemas import ErrorResponse, ReloadRequest, ReloadResponse, WorkerModelInfo

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load, warm up and swap in a model in every worker (admin scope)",
    description=(
        "Loads the bundle at `model` (a path or `models:/name@alias`), default "
        "`RAKUTEN_MODEL_PATH` (`RAKUTEN_CHALLENGER_MODEL_PATH` with `role: challenger`), warms "
        "it up with every batch size the batcher uses, then swaps it in. Requests keep being "
        "served by the old model meanwhile. The worker that received the request then publishes "
        "the bundle to the replica's other workers, which load, warm up and swap it the same "
        "way, and answers once every live worker serves it, listing each in `workers`. If the "
        "receiving worker cannot load it, nothing changes anywhere (422). If another worker "
        "fails or does not follow within `RAKUTEN_RELOAD_TIMEOUT_S`, the answer is 504 with "
        "each worker's state; a worker that failed keeps serving its old model."
    ),
    responses={
        403: {"model": ErrorResponse, "description": "Token lacks the admin scope"},
        422: {"model": ErrorResponse, "description": "Reload failed; the old model still serves"},
        504: {
            "model": ErrorResponse,
            "description": "Not every worker followed in time (detail: message and workers)",
        },
    },
)
async def reload(
    user: AdminUser,
    state: StateDep,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    request = body or ReloadRequest()
    role = request.role
    replica = state.replica
    spec = request.model or replica.default_spec(role)
    if not spec:
        raise InvalidInputError(f"no {role} is configured: give `model`")
    predictor = replica.predictors[role]
    previous = predictor.model.metadata.model_version if predictor.ready else None
    try:
        new, generation, previous = await run_in_threadpool(replica.reload_here, role, spec)
    except ModelUnavailableError as exc:
        logger.error("reload of the %s %s by %s failed: %s", role, spec, user.username, exc)
        raise InvalidInputError(f"reload failed, still serving version {previous}: {exc}") from None
    followed = await replica.wait_followers(role, generation)
    workers = [WorkerModelInfo(pid=w.pid, model_version=w.model_version) for w in followed.workers]
    version = new.metadata.model_version
    if followed.lagging:
        lagging = ", ".join(
            f"{w.pid} ({w.error or 'still loading'}; serving {w.model_version})"
            for w in followed.lagging
        )
        logger.error("reload of the %s to %s: workers did not follow: %s", role, version, lagging)
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            {
                "message": f"the {role} {version} is served by some workers only; not followed "
                f"by: {lagging}",
                "workers": [w.model_dump() for w in workers],
            },
        )
    logger.info(
        "%s reloaded the %s in %d workers: %s -> %s",
        user.username,
        role,
        len(workers),
        previous,
        version,
    )
    return ReloadResponse(
        previous_version=previous, model=model_info(new), role=role, workers=workers
    )
