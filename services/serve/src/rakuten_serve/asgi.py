"""The ASGI entry point for servers: ``uvicorn --factory rakuten_serve.asgi:build``.

Each worker process calls :func:`build` once: settings from the environment, logging to
``logs/serve.log``, then :func:`rakuten_serve.app.create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI

from rakuten_core.logs import configure_logging
from rakuten_serve.app import create_app
from rakuten_serve.settings import get_settings


def build() -> FastAPI:
    settings = get_settings()
    configure_logging("serve", log_dir=settings.log_dir, level=settings.log_level)
    return create_app(settings)
