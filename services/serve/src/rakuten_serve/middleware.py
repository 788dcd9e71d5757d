"""Pure-ASGI middleware: request id + access log + HTTP metrics, and the request body limit.

The request id is the caller's ``X-Request-ID`` when it is a usable key (16 to 64 characters
from ``A-Z a-z 0-9 _ -``), else a new one. The proxy sets it once per client request and keeps it
when it retries the request on another replica, so the prediction record (keyed by it) is
written once whichever replica answers. Taking it is safe because nothing but the proxy reaches
serve in the stack and the proxy overwrites whatever a client sent (docs/security.md); a
client that reaches serve directly can only choose the id of its own request.
The access log records method, path (never the query string), route, status, duration, client
address and user name. An exception nothing else handled is answered here, inside the request's
context: a JSON 500 carrying the request id, the traceback logged under that id, the access log
line and the metrics as for any answer, and the connection kept (Starlette's outermost error
middleware would re-raise to the server, which then drops the connection). Headers and bodies
are never logged, so tokens, passwords and image bytes cannot end up in ``logs/serve.log``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rakuten_core.logs import request_id
from rakuten_serve.telemetry import Telemetry

access_logger = logging.getLogger("rakuten_serve.access")
logger = logging.getLogger(__name__)
REQUEST_ID_HEADER = b"x-request-id"
# what the prediction record's key (String(64)) accepts and a log line carries as it is; 16
# characters at least, so that an id cannot be a short word two clients pick alike
_USABLE_REQUEST_ID = re.compile(rb"[A-Za-z0-9_-]{16,64}")


def new_request_id() -> str:
    """128 random bits as 32 hex digits, the shape of ``uuid4().hex``.

    From :mod:`random`'s generator (seeded by the OS at import and again in every forked
    child), not ``os.urandom`` per request: that system call releases the GIL, and on a busy
    worker the event loop then waits for the decode threads to hand it back (py-spy at
    concurrency 32: ``uuid4`` was 4 % of the event loop's samples). The id keys the prediction's
    record; it is not a secret.
    """
    return f"{random.getrandbits(128):032x}"


def request_id_of(scope: Scope) -> str:
    """The request's ``X-Request-ID`` when usable (the first one, whole), else a new id."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            if _USABLE_REQUEST_ID.fullmatch(value):
                return bytes(value).decode("ascii")
            break
    return new_request_id()


class RequestContextMiddleware:
    """Gives every request an id (response header ``X-Request-ID``), logs and measures it."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started_response = False
        started = time.perf_counter()
        self.telemetry.request_started()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            logger.exception("unhandled %s", type(exc).__name__)
            status = 500
            if not started_response:
                await send_wrapper(_internal_error(rid))
                await send_wrapper({"type": "http.response.body", "body": _error_body(rid)})
        finally:
            elapsed = time.perf_counter() - started
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
            method = scope.get("method", "-")
            self.telemetry.request_finished(
                route=route, method=method, status=status, seconds=elapsed
            )
            client = scope.get("client")
            state: dict[str, Any] = scope.get("state", {})
            access_logger.info(
                "%s %s %d %.1fms",
                method,
                scope.get("path", ""),
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                    "user": state.get("username"),
                },
            )
            request_id.reset(token)


def _error_body(rid: str) -> bytes:
    return json.dumps(
        {"error": "internal_error", "detail": "internal server error", "request_id": rid}
    ).encode()


def _internal_error(rid: str) -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_error_body(rid))).encode()),
        ],
    }


class BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413 before they are parsed or spooled to disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send, declared)
                    return
        received = 0
        exceeded = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app answers after the body overflowed (FastAPI turns a failed body
            # read into a 400), the client gets the 413 that explains it.
            nonlocal refused
            if exceeded:
                if not refused and message["type"] == "http.response.start":
                    refused = True
                    await self._refuse(send, received)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLargeError:
            if not refused:
                refused = True
                await self._refuse(send, received)

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "error": "input_too_large",
                "detail": f"request body is over {self.max_bytes} bytes (got at least {size})",
                "request_id": request_id.get(),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
