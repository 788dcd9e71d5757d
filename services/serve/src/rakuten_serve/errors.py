"""The one place where exceptions become HTTP responses.

Every error body has the same shape, ``{"error": code, "detail": message, "request_id": id}``
(:class:`~rakuten_serve.schemas.ErrorResponse`); nothing unexpected leaks a stack trace.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from slowapi.errors import RateLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rakuten_core.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    InputTooLargeError,
    InvalidInputError,
    ModelUnavailableError,
    OverloadedError,
    RakutenError,
    UnsupportedMediaError,
)
from rakuten_core.logs import request_id

logger = logging.getLogger(__name__)

# (exception type, status, error code); the first match in this order wins.
DOMAIN_ERRORS: tuple[tuple[type[RakutenError], int, str], ...] = (
    (InputTooLargeError, 413, "input_too_large"),
    (UnsupportedMediaError, 415, "unsupported_media_type"),
    (InvalidInputError, 422, "invalid_input"),
    (ConflictError, 409, "conflict"),
    (OverloadedError, 503, "overloaded"),
    (DatabaseUnavailableError, 503, "database_unavailable"),
    (ModelUnavailableError, 503, "model_unavailable"),
    (ConfigurationError, 500, "configuration_error"),
    (RakutenError, 500, "internal_error"),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "input_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
    504: "not_followed",
}


def error_response(
    status: int, error: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": error, "detail": jsonable_encoder(detail), "request_id": request_id.get()}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: RakutenError) -> tuple[int, str]:
    for kind, status, code in DOMAIN_ERRORS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RakutenError)
    status, code = status_for(exc)
    headers = None
    if isinstance(exc, OverloadedError | DatabaseUnavailableError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, ModelUnavailableError):
        headers = {"Retry-After": "30"}
    if status >= 500 and not isinstance(
        exc, OverloadedError | ModelUnavailableError | DatabaseUnavailableError
    ):
        logger.error("%s: %s", type(exc).__name__, exc)
    return error_response(status, code, str(exc), headers)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        problems.append({"field": loc, "message": err.get("msg", "invalid")})
    # Never echo the submitted values back (they may contain a password).
    return error_response(422, "invalid_input", problems)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, exc.detail, dict(exc.headers or {}))


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitExceeded)
    retry_after = 60
    current = getattr(request.state, "view_rate_limit", None)
    limiter = getattr(request.app.state, "limiter", None)
    if current is not None and limiter is not None:
        try:
            reset, _remaining = limiter.limiter.get_window_stats(current[0], *current[1])
            retry_after = max(1, math.ceil(reset - time.time()))
        except Exception:  # storage hiccup: the default is still a valid answer
            logger.warning("could not read the rate-limit window; Retry-After defaults to 60")
    state = getattr(request.app.state, "serve", None)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    if state is not None:
        state.telemetry.rate_limited(route)
    return error_response(
        429,
        "rate_limited",
        f"rate limit exceeded ({exc.detail}); retry in {retry_after} s",
        {"Retry-After": str(retry_after)},
    )


# Connection-level database failures (server down, connection lost, pool exhausted): the
# request may succeed later, so 503 + Retry-After, never a 500. Other SQLAlchemy errors are bugs.
DB_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


async def _database(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", type(exc).__name__)
    unavailable = DatabaseUnavailableError("the database is unavailable; retry shortly")
    return error_response(
        503,
        "database_unavailable",
        str(unavailable),
        {"Retry-After": str(unavailable.retry_after_s)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RakutenError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    for kind in DB_UNAVAILABLE:
        app.add_exception_handler(kind, _database)
    # Any other exception is answered by RequestContextMiddleware (JSON 500 with the request
    # id, connection kept), not by Starlette's outermost handler, which re-raises to the server.
