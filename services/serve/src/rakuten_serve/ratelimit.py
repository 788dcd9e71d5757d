"""slowapi rate limiting: per user on ``/predict``, per client address on ``/token``.

Counters live in memory by default and in Redis when ``RAKUTEN_REDIS_URL`` is set, so several
workers and replicas share them. If Redis becomes unreachable, slowapi falls back to in-memory
counters (logged) rather than failing requests, and goes back to Redis when it answers again.
"""

from __future__ import annotations

from fastapi import Request
from slowapi import Limiter
from slowapi.util import get_remote_address

from rakuten_serve.settings import ServeSettings


def user_key(request: Request) -> str:
    """Rate-limit key of an authenticated route (the auth dependency has run by then)."""
    username = getattr(request.state, "username", None)
    return f"user:{username}" if username else f"ip:{get_remote_address(request)}"


def client_key(request: Request) -> str:
    return f"ip:{get_remote_address(request)}"


def build_limiter(settings: ServeSettings) -> Limiter:
    storage = settings.redis_url or "memory://"
    return Limiter(
        key_func=client_key,
        storage_uri=storage,
        headers_enabled=False,  # slowapi would add "Retry-After" to every 200 as well
        enabled=settings.rate_limit_enabled,
        in_memory_fallback_enabled=settings.redis_url is not None,
        key_prefix="rakuten-serve",
    )
