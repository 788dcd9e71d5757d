"""slowapi rate limiting: per user on ``/predict``, per client address on ``/token``.

Counters live in memory by default and in Redis when ``RAKUTEN_REDIS_URL`` is set, so several
workers and replicas share them. If Redis becomes unreachable, slowapi falls back to in-memory
counters (logged) rather than failing requests, and goes back to Redis when it answers again;
each fall-back is counted in ``rakuten_rate_limit_backend_errors_total``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from slowapi import Limiter
from slowapi.util import get_remote_address

from rakuten_serve.settings import ServeSettings
from rakuten_serve.telemetry import Telemetry


class ObservedLimiter(Limiter):
    """slowapi's limiter, reporting each switch from Redis to the in-memory fallback.

    slowapi records the switch only in its private ``_storage_dead`` flag and a log line, so
    the check is wrapped and the flag compared before and after (slowapi is pinned in the lock).
    """

    def __init__(self, *args: Any, telemetry: Telemetry, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._telemetry = telemetry

    def _check_request_limit(self, *args: Any, **kwargs: Any) -> None:
        was_dead = self._storage_dead
        try:
            super()._check_request_limit(*args, **kwargs)
        finally:
            if self._storage_dead and not was_dead:
                self._telemetry.rate_limit_backend_failed()


def user_key(request: Request) -> str:
    """Rate-limit key of an authenticated route (the auth dependency has run by then)."""
    username = getattr(request.state, "username", None)
    return f"user:{username}" if username else f"ip:{get_remote_address(request)}"


def client_key(request: Request) -> str:
    return f"ip:{get_remote_address(request)}"


def build_limiter(settings: ServeSettings, telemetry: Telemetry) -> Limiter:
    storage = settings.redis_url or "memory://"
    return ObservedLimiter(
        telemetry=telemetry,
        key_func=client_key,
        storage_uri=storage,
        headers_enabled=False,  # slowapi would add "Retry-After" to every 200 as well
        enabled=settings.rate_limit_enabled,
        in_memory_fallback_enabled=settings.redis_url is not None,
        key_prefix="rakuten-serve",
    )
