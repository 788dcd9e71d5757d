"""The ASGI entry point for servers: ``uvicorn --factory rakuten_serve.asgi:build``.

Each worker process calls :func:`build` once: settings from the environment, logging to
``logs/serve.log``, then :func:`rakuten_serve.app.create_app`.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from rakuten_core.logs import configure_logging
from rakuten_serve.app import create_app
from rakuten_serve.settings import get_settings


def build() -> FastAPI:
    # Model calls are serialised by the batcher, so TensorFlow gains nothing from several
    # inter-op threads; they only spin between calls (~30 % more CPU per small call, measured).
    # Set before TensorFlow starts; an explicit TF_NUM_INTEROP_THREADS wins.
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    settings = get_settings()
    configure_logging("serve", log_dir=settings.log_dir, level=settings.log_level)
    return create_app(settings)
