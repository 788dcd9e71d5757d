"""What one app instance holds: settings, model, runner, database, recorder, telemetry, limiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr
from slowapi import Limiter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rakuten_serve.batcher import Runner
from rakuten_serve.db.recorder import PredictionRecorder
from rakuten_serve.image_store import ImageStore
from rakuten_serve.predictor import PredictionResult, Predictor, PreparedInput
from rakuten_serve.replica import ReplicaModels
from rakuten_serve.settings import ServeSettings
from rakuten_serve.shadow import ShadowScorer
from rakuten_serve.telemetry import Telemetry
from rakuten_serve.tokens import TokenClaims
from rakuten_serve.users import UserInfo


class UserCache:
    """Short-lived cache of user lookups, so a disabled user is locked out within seconds
    without a database round trip on every request.

    Entries stay after their ``ttl_s`` as the *last known state* of the user: while the database
    is down, :meth:`last_known` lets an already authenticated user keep predicting for a bounded
    time (``RAKUTEN_USER_STALE_MAX_S``) instead of every request failing. :meth:`database_failed`
    also pauses lookups for a moment, so an outage costs one failed connection per second, not
    one per request.
    """

    def __init__(self, ttl_s: float, *, retry_after_failure_s: float = 1.0) -> None:
        self._ttl_s = ttl_s
        self._items: dict[str, tuple[float, UserInfo | None]] = {}
        self._lock = threading.Lock()
        self._retry_after_failure_s = retry_after_failure_s
        self._skip_database_until = 0.0

    def get(self, username: str) -> tuple[bool, UserInfo | None]:
        with self._lock:
            hit = self._items.get(username)
        if hit is None or hit[0] + self._ttl_s <= time.monotonic():
            return False, None
        return True, hit[1]

    def last_known(self, username: str, max_age_s: float) -> tuple[bool, UserInfo | None]:
        """The user as last read from the database, if that was at most ``max_age_s`` ago."""
        with self._lock:
            hit = self._items.get(username)
        if hit is None or hit[0] + max_age_s < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, username: str, user: UserInfo | None) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[username] = (time.monotonic(), user)

    def database_failed(self) -> None:
        with self._lock:
            self._skip_database_until = time.monotonic() + self._retry_after_failure_s

    @property
    def database_suspect(self) -> bool:
        """True for a moment after a failed lookup: go straight to the last known state."""
        return time.monotonic() < self._skip_database_until


class TokenCache:
    """Recently verified tokens and their claims, so a client sending the same bearer token
    on every request does not pay for HMAC verification and claim parsing each time. An entry is
    dropped at the token's expiry; the user's enabled state is still checked on every request."""

    def __init__(self, max_items: int = 4096) -> None:
        self._max_items = max_items
        self._items: dict[str, TokenClaims] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> TokenClaims | None:
        with self._lock:
            claims = self._items.get(token)
        if claims is not None and claims.expires <= datetime.now(UTC):
            with self._lock:
                self._items.pop(token, None)
            return None
        return claims

    def put(self, token: str, claims: TokenClaims) -> None:
        with self._lock:
            if len(self._items) >= self._max_items:
                self._items.clear()
            self._items[token] = claims


@dataclass
class ServeState:
    settings: ServeSettings
    signing_key: SecretStr
    predictor: Predictor
    runner: Runner[PreparedInput, PredictionResult]
    engine: Engine
    sessions: sessionmaker[Session]
    recorder: PredictionRecorder
    telemetry: Telemetry
    limiter: Limiter
    users: UserCache
    replica: ReplicaModels
    shadow: ShadowScorer
    tokens: TokenCache = field(default_factory=TokenCache)
    decode_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")
    )
    started_at: float = field(default_factory=time.monotonic)
    warm_up_sizes: Sequence[int] = ()
    image_store: ImageStore | None = None  # RAKUTEN_IMAGE_STORE_DIR set
