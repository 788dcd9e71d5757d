"""Dependencies of the routers: the app's state, the model, the authenticated user.

Handlers declare what they need with the ``Annotated`` aliases below (``CurrentUser``,
``LabelUser``, ``AdminUser``, ``PredictorDep``, ``SettingsDep``, ``StateDep``), so tests and the
app factory swap implementations without patching.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from rakuten_core.errors import DatabaseUnavailableError
from rakuten_serve.errors import DB_UNAVAILABLE
from rakuten_serve.predictor import Predictor
from rakuten_serve.settings import ServeSettings
from rakuten_serve.state import ServeState
from rakuten_serve.tokens import InvalidTokenError, decode_access_token
from rakuten_serve.users import SCOPES, UserInfo, get_user

logger = logging.getLogger(__name__)

# auto_error=False: a missing token is refused below, where the refusal is also counted.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", scopes=SCOPES, auto_error=False)


async def get_state(request: Request) -> ServeState:
    # async on purpose (here and below): FastAPI runs a plain ``def`` dependency in the thread
    # pool, a costly round trip per request for a dictionary lookup.
    state: ServeState = request.app.state.serve
    return state


StateDep = Annotated[ServeState, Depends(get_state)]


async def get_app_settings(state: StateDep) -> ServeSettings:
    return state.settings


async def get_predictor(state: StateDep) -> Predictor:
    return state.predictor


SettingsDep = Annotated[ServeSettings, Depends(get_app_settings)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]


def _unauthorized(detail: str, scopes: SecurityScopes) -> HTTPException:
    value = f'Bearer scope="{scopes.scope_str}"' if scopes.scopes else "Bearer"
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, {"WWW-Authenticate": value})


async def _lookup_user(state: ServeState, username: str) -> UserInfo | None:
    """The user from the cache or the database; the last known state while the database is down.

    Raises ``DatabaseUnavailableError`` (503 + Retry-After) when the database is down and the
    user was not seen within ``RAKUTEN_USER_STALE_MAX_S``.
    """
    found, user = state.users.get(username)
    if found:
        return user
    if not state.users.database_suspect:
        try:
            user = await run_in_threadpool(get_user, state.sessions, username)
        except DB_UNAVAILABLE as exc:
            state.users.database_failed()
            logger.warning("user lookup failed (%s)", type(exc).__name__)
        else:
            state.users.put(username, user)
            return user
    found, user = state.users.last_known(username, state.settings.user_stale_max_s)
    if not found:
        raise DatabaseUnavailableError("the user database is unavailable; retry shortly")
    return user


async def get_current_user(
    security_scopes: SecurityScopes,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    state: StateDep,
    request: Request,
) -> UserInfo:
    """The enabled user the bearer token names, holding every scope the route requires."""
    if not token:
        state.telemetry.auth_failed("missing_token")
        raise _unauthorized("Not authenticated", security_scopes)
    claims = state.tokens.get(token)
    if claims is None:
        try:
            claims = decode_access_token(token, key=state.signing_key)
        except InvalidTokenError as exc:
            logger.info("rejected token: %s", exc)
            state.telemetry.auth_failed("invalid_token")
            raise _unauthorized("invalid or expired token", security_scopes) from None
        state.tokens.put(token, claims)
    user = await _lookup_user(state, claims.subject)
    if user is None or user.disabled:
        state.telemetry.auth_failed("user_rejected")
        raise _unauthorized("user unknown or disabled", security_scopes)
    granted = set(claims.scopes) & set(user.scopes)
    missing = [s for s in security_scopes.scopes if s not in granted]
    if missing:
        state.telemetry.auth_failed("insufficient_scope")
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this operation needs the scope(s): {' '.join(missing)}",
            {"WWW-Authenticate": f'Bearer scope="{security_scopes.scope_str}"'},
        )
    request.state.username = user.username
    return user


CurrentUser = Annotated[UserInfo, Security(get_current_user, scopes=["predict"])]
# Labels become training data and live accuracy: a scope of their own, not implied by predict.
LabelUser = Annotated[UserInfo, Security(get_current_user, scopes=["label"])]
AdminUser = Annotated[UserInfo, Security(get_current_user, scopes=["admin"])]
