"""``POST /token``: the OAuth2 password flow, rate-limited per client address and per user.

An unknown user, a wrong password and a disabled user get the same answer in about the same
time (a dummy bcrypt hash of the same cost is checked for unknown users). Failed attempts are
counted per user name, so guessing one account's password from many addresses is limited too.
Service accounts (``RAKUTEN_SERVICE_ACCOUNTS``) log in from inside the stack only: through the
proxy, which marks every request it forwards with :data:`EDGE_HEADER`, their login is refused
before any password check and counts no failure, so nobody outside can lock them out.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm
from slowapi import Limiter

from rakuten_serve.deps import StateDep
from rakuten_serve.passwords import verify_password
from rakuten_serve.ratelimit import FailedLoginLimit, client_key
from rakuten_serve.schemas import ErrorResponse, TokenResponse
from rakuten_serve.settings import ServeSettings
from rakuten_serve.tokens import create_access_token
from rakuten_serve.users import SCOPES, get_credentials

logger = logging.getLogger(__name__)

# Set by the proxy on every request it forwards, overwriting whatever the client sent
# (docker/proxy/conf/routes.conf); requests from inside the stack do not carry it.
EDGE_HEADER = "X-Rakuten-Edge"


def build_router(
    limiter: Limiter, settings: ServeSettings, failed_logins: FailedLoginLimit
) -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post(
        "/token",
        response_model=TokenResponse,
        summary="Exchange a user name and password for a bearer token",
        description=(
            "OAuth2 password flow (form fields `username`, `password`, optional `scope`, a "
            f"space-separated subset of `{' '.join(SCOPES)}`; the token gets the ones the user "
            "holds; default: all the user's scopes). "
            "Send the token as `Authorization: Bearer <token>`; it is never accepted in a URL. "
            f"Rate limit per client address: {settings.token_rate_limit}; failed attempts per "
            f"user name: {settings.token_user_rate_limit}."
        ),
        responses={
            401: {"model": ErrorResponse, "description": "Wrong user name or password"},
            422: {"model": ErrorResponse, "description": "Password over bcrypt's 72 bytes"},
            429: {"model": ErrorResponse, "description": "Too many attempts; see Retry-After"},
            503: {"model": ErrorResponse, "description": "User database unavailable; Retry-After"},
        },
    )
    @limiter.limit(settings.token_rate_limit, key_func=client_key)
    async def token(
        request: Request,
        response: Response,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        state: StateDep,
    ) -> TokenResponse:
        if form.username in settings.service_accounts and request.headers.get(EDGE_HEADER):
            state.telemetry.auth_failed("service_account_at_edge")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "incorrect user name or password, or user disabled",
                {"WWW-Authenticate": "Bearer"},
            )
        wait = failed_logins.retry_after(form.username)
        if wait is not None:
            state.telemetry.rate_limited("/token")
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many failed attempts for this user; retry in {wait} s",
                {"Retry-After": str(wait)},
            )
        found = await run_in_threadpool(get_credentials, state.sessions, form.username)
        user, password_hash = found if found else (None, None)
        ok = await run_in_threadpool(verify_password, form.password, password_hash)
        if not ok or user is None or user.disabled:
            failed_logins.failed(form.username)
            logger.info("failed login for %r", form.username[:64])
            state.telemetry.auth_failed("bad_credentials")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "incorrect user name or password, or user disabled",
                {"WWW-Authenticate": "Bearer"},
            )
        requested = set(form.scopes)
        granted = sorted(set(user.scopes) & requested) if requested else sorted(user.scopes)
        expires = timedelta(minutes=state.settings.jwt_expire_minutes)
        access = create_access_token(
            user.username, granted, key=state.signing_key, expires_in=expires
        )
        request.state.username = user.username
        return TokenResponse(
            access_token=access, expires_in=int(expires.total_seconds()), scopes=granted
        )

    return router
