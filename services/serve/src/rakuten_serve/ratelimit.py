"""slowapi rate limiting: per user on ``/predict`` and ``/feedback``, per client address and per
user on ``/token``.

Counters live in memory by default and in Redis when ``RAKUTEN_REDIS_URL`` is set, so several
workers and replicas share them. Redis down fails *open*, to per-process limits: slowapi switches
to in-memory counters (each worker then enforces the limit on its own share of the traffic),
:class:`ObservedLimiter` logs a warning and counts the failure in
``rakuten_rate_limit_backend_errors_total``, and slowapi goes back to Redis when it answers again
(it re-checks with a backoff of 1, 2, 4 ... 32 s). Refusing every request because a counter store
is down would turn a Redis outage into an API outage; see docs/reliability.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from limits import RateLimitItem, parse
from slowapi import Limiter
from slowapi.util import get_remote_address

from rakuten_serve.settings import ServeSettings
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)


def user_key(request: Request) -> str:
    """Rate-limit key of an authenticated route (the auth dependency has run by then)."""
    username = getattr(request.state, "username", None)
    return f"user:{username}" if username else f"ip:{get_remote_address(request)}"


def client_key(request: Request) -> str:
    return f"ip:{get_remote_address(request)}"


class ObservedLimiter(Limiter):
    """A slowapi ``Limiter`` that reports when its storage fails (metric + warning)."""

    def __init__(self, *args: Any, on_backend_error: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_backend_error = on_backend_error

    def _check_request_limit(
        self, request: Request, endpoint_func: Callable[..., Any] | None, in_middleware: bool = True
    ) -> None:
        was_dead = self._storage_dead
        try:
            super()._check_request_limit(request, endpoint_func, in_middleware)
        finally:
            if self._storage_dead and not was_dead:
                self.backend_failed()

    def backend_failed(self) -> None:
        self._on_backend_error()
        logger.warning(
            "rate-limit storage unreachable: limits are enforced per process until it answers"
        )


class FailedLoginLimit:
    """Failed ``/token`` attempts per user name, in the limiter's storage (Redis when set).

    Counting failures only means a user who types the right password is never locked out by
    their own successes; an attacker guessing one account's password from many addresses is.
    """

    def __init__(self, limiter: ObservedLimiter, limit: str) -> None:
        self._limiter = limiter
        self._item: RateLimitItem = parse(limit)

    def retry_after(self, username: str) -> int | None:
        """Seconds until ``username`` may try again, or ``None`` if attempts are left."""
        if not self._limiter.enabled:
            return None
        key = _user_login_key(username)
        try:
            strategy = self._limiter.limiter
            if strategy.test(self._item, key):
                return None
            reset, _remaining = strategy.get_window_stats(self._item, key)
        except Exception as exc:  # storage down: fail open, like the other limits
            logger.warning("failed-login counter unavailable (%s)", type(exc).__name__)
            self._limiter.backend_failed()
            return None
        return max(1, math.ceil(reset - time.time()))

    def failed(self, username: str) -> None:
        if not self._limiter.enabled:
            return
        try:
            self._limiter.limiter.hit(self._item, _user_login_key(username))
        except Exception as exc:  # storage down: fail open, like the other limits
            logger.warning("failed-login counter unavailable (%s)", type(exc).__name__)
            self._limiter.backend_failed()


def _user_login_key(username: str) -> str:
    return f"token-user:{username.strip().lower()[:128]}"


def build_limiter(settings: ServeSettings, telemetry: Telemetry) -> ObservedLimiter:
    storage = settings.redis_url or "memory://"
    return ObservedLimiter(
        on_backend_error=telemetry.rate_limit_backend_failed,
        key_func=client_key,
        storage_uri=storage,
        headers_enabled=False,  # slowapi would add "Retry-After" to every 200 as well
        enabled=settings.rate_limit_enabled,
        in_memory_fallback_enabled=settings.redis_url is not None,
        key_prefix="rakuten-serve",
    )
