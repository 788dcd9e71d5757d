"""The ASGI entry point for servers: ``uvicorn --factory rakuten_serve.asgi:build``.

Each worker process calls :func:`build` once: settings from the environment, the model's
thread pool sized for ``RAKUTEN_WORKERS`` processes (``rakuten-serve run --workers N`` sets
it; set it yourself when starting uvicorn or gunicorn with several workers), logging to
``logs/serve.log``, then :func:`rakuten_serve.app.create_app`.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from rakuten_core.bundle import INTRA_OP_THREADS_ENV
from rakuten_core.logs import configure_logging
from rakuten_serve.app import create_app
from rakuten_serve.settings import get_settings


def size_model_threads(workers: int) -> None:
    """ONNX Runtime's intra-op pool for one of ``workers`` processes (before the model loads).

    Its default is every core, in each process; with several workers that is more busy threads
    than cores, so each gets its share (cores // workers, at least 1): with 2 workers on 2
    cores, 12 % less CPU per request (docs/performance.md). Inter-op is 1 in the session
    options (the batcher serialises model calls). A value already set in the environment wins.
    """
    if workers > 1:
        share = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ.setdefault(INTRA_OP_THREADS_ENV, str(share))


def build() -> FastAPI:
    settings = get_settings()
    size_model_threads(settings.workers)
    configure_logging("serve", log_dir=settings.log_dir, level=settings.log_level)
    return create_app(settings)
