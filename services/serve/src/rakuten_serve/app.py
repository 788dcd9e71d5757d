"""The app factory: ``create_app(settings, predictor=None)``.

Tests inject settings (and optionally an already loaded :class:`Predictor`); production goes
through :mod:`rakuten_serve.asgi`. The model is loaded and warmed up in the lifespan; if it
cannot be loaded the API still starts, reports not ready, and an admin can reload.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles

from rakuten_core.errors import ModelUnavailableError
from rakuten_serve import __version__, heap
from rakuten_serve.batcher import DirectRunner, MicroBatcher, Runner
from rakuten_serve.db.engine import build_engine, session_factory
from rakuten_serve.db.recorder import PredictionRecorder
from rakuten_serve.errors import install_error_handlers
from rakuten_serve.image_store import ImageStore
from rakuten_serve.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from rakuten_serve.predictor import PredictionResult, Predictor, PreparedInput
from rakuten_serve.ratelimit import FailedLoginLimit, build_limiter
from rakuten_serve.reload_board import ReloadBoard
from rakuten_serve.replica import ReplicaModels
from rakuten_serve.routers import admin, auth, feedback, health, predict, web
from rakuten_serve.settings import ServeSettings, get_settings
from rakuten_serve.shadow import ShadowScorer
from rakuten_serve.state import ServeState, UserCache
from rakuten_serve.telemetry import Telemetry, build_telemetry

logger = logging.getLogger(__name__)

DESCRIPTION = """
Classifies a Rakuten France product (designation, description, image) into one of the 27
product type codes. Get a token with `POST /token` (OAuth2 password flow), then send it as
`Authorization: Bearer <token>` to `POST /predict`. See `docs/api.md`.
"""


def _reporting(
    predictor: Predictor, telemetry: Telemetry
) -> Callable[[Sequence[PreparedInput]], Sequence[PredictionResult]]:
    """The model call, reporting each product's predicted class and confidence."""

    def run_batch(items: Sequence[PreparedInput]) -> Sequence[PredictionResult]:
        results = predictor.predict_batch(items)
        telemetry.predicted([(r.top[0].prdtypecode, r.top[0].probability) for r in results])
        return results

    return run_batch


def _runner(
    settings: ServeSettings, predictor: Predictor, telemetry: Telemetry
) -> Runner[PreparedInput, PredictionResult]:
    run_batch = _reporting(predictor, telemetry)
    if settings.batch_enabled:
        return MicroBatcher(
            run_batch,
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            queue_size=settings.batch_queue_size,
            telemetry=telemetry,
            retry_after_s=settings.overload_retry_after_s,
        )
    return DirectRunner(
        run_batch,
        queue_size=settings.batch_queue_size,
        telemetry=telemetry,
        retry_after_s=settings.overload_retry_after_s,
    )


def _publish_model(state: ServeState) -> None:
    if state.predictor.ready:
        meta = state.predictor.model.metadata
        state.telemetry.model_loaded(
            name=meta.model_name,
            version=meta.model_version,
            run_id=meta.mlflow_run_id,
            source=state.predictor.model.source,
            prdtypecodes=[c.code for c in meta.categories],
        )


async def _load_or_warm(state: ServeState) -> None:
    settings = state.settings
    warm_batch = settings.batch_max_size if settings.batch_enabled else 1
    if state.predictor.ready:
        seconds = await run_in_threadpool(state.predictor.model.warm_up, warm_batch)
        logger.info("injected model warmed up in %.2fs", seconds)
        return
    try:
        # the model last published to the replica's workers, else RAKUTEN_MODEL_PATH
        await run_in_threadpool(state.replica.load_startup, "champion")
    except ModelUnavailableError as exc:
        logger.error("no model loaded (%s); /health/ready reports not ready", exc)


def _image_store(settings: ServeSettings, telemetry: Telemetry) -> ImageStore | None:
    if settings.image_store_dir is None:
        return None
    return ImageStore(
        settings.image_store_dir,
        telemetry=telemetry,
        max_bytes=settings.image_store_max_bytes,
        retention_days=settings.image_store_retention_days,
        queue_bytes=settings.image_store_queue_bytes,
        sweep_interval_s=settings.image_store_sweep_interval_s,
    )


def create_app(
    settings: ServeSettings | None = None, predictor: Predictor | None = None
) -> FastAPI:
    """Build the API. Raises ``ConfigurationError`` for unsafe settings (e.g. JWT secret)."""
    settings = settings or get_settings()
    signing_key = settings.signing_key()
    telemetry = build_telemetry(enabled=settings.metrics_enabled)
    limiter = build_limiter(settings, telemetry)
    engine = build_engine(settings.database_url)
    the_predictor = predictor or Predictor(top_k=settings.top_k)
    board = ReloadBoard(settings.run_dir) if settings.run_dir else None
    replica = ReplicaModels(settings, champion=the_predictor, telemetry=telemetry, board=board)
    state = ServeState(
        settings=settings,
        signing_key=signing_key,
        predictor=the_predictor,
        runner=_runner(settings, the_predictor, telemetry),
        engine=engine,
        sessions=session_factory(engine),
        recorder=PredictionRecorder(
            engine,
            telemetry=telemetry,
            spool_dir=settings.record_spool_dir,
            queue_size=settings.record_queue_size,
            batch_size=settings.record_batch_size,
            spool_max_bytes=settings.record_spool_max_bytes,
            journal_enabled=settings.record_journal,
            retry_initial_s=settings.record_retry_initial_s,
            retry_max_s=settings.record_retry_max_s,
        ),
        telemetry=telemetry,
        limiter=limiter,
        users=UserCache(settings.user_cache_seconds),
        image_store=_image_store(settings, telemetry),
        replica=replica,
        shadow=ShadowScorer(
            replica.challenger,
            engine=engine,
            telemetry=telemetry,
            share=settings.shadow_share,
            queue_size=settings.shadow_queue_size,
            batch_size=settings.batch_max_size,
            image_limits=settings.image_limits,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _load_or_warm(state)
        _publish_model(state)
        state.recorder.start()
        if state.image_store is not None:
            state.image_store.start()
        await state.runner.start()
        await run_in_threadpool(state.replica.start)  # the challenger, if any, loads here
        state.shadow.start()
        heap.freeze()  # after the model and the startup imports: see rakuten_serve.heap
        logger.info("rakuten-serve ready (batching=%s)", settings.batch_enabled)
        try:
            yield
        finally:
            await state.runner.stop()
            await run_in_threadpool(state.shadow.stop)
            await run_in_threadpool(state.replica.stop)
            await run_in_threadpool(state.recorder.stop)
            if state.image_store is not None:
                await run_in_threadpool(state.image_store.stop)
            state.decode_pool.shutdown(wait=False)
            engine.dispose()
            heap.unfreeze()

    # The interactive pages (/docs, /redoc) load their scripts from a CDN without integrity
    # checks: served in development only. /openapi.json stays, for clients and generators.
    pages = settings.is_development
    app = FastAPI(
        title="Rakuten product classification API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if pages else None,
        redoc_url="/redoc" if pages else None,
    )
    app.state.serve = state
    app.state.limiter = limiter
    install_error_handlers(app)
    routers: Sequence[object] = (
        auth.build_router(
            limiter, settings, FailedLoginLimit(limiter, settings.token_user_rate_limit)
        ),
        predict.build_router(limiter, settings),
        feedback.build_router(limiter, settings),
        health.router,
        admin.router,
        web.router,
    )
    for router in routers:
        app.include_router(router)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, telemetry=telemetry)
    return app
