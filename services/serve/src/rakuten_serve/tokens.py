"""JWT access tokens (python-jose, HS256 only).

Decoding passes an explicit one-element algorithm list, so a token whose header says ``none``,
``HS512`` or ``RS256`` is refused whatever its signature, and requires ``exp``, ``iat`` and
``sub``. A token issued in the future (``iat`` ahead of the clock by more than a small skew) or
not valid yet (``nbf``) is refused too: python-jose checks only that ``iat`` is a number.
Tokens travel in the ``Authorization: Bearer`` header only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jose import JWTError, jwt
from pydantic import SecretStr

from rakuten_serve.settings import JWT_ALGORITHM

_DECODE_OPTIONS = {
    "require_exp": True,
    "require_iat": True,
    "require_sub": True,
    "verify_exp": True,
    "verify_iat": True,
    "leeway": 0,
}


_CLOCK_SKEW_S = 30


class InvalidTokenError(Exception):
    """The token is malformed, expired, tampered with or signed with another algorithm."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    scopes: tuple[str, ...]
    expires: datetime


def create_access_token(
    subject: str,
    scopes: Sequence[str],
    *,
    key: SecretStr,
    expires_in: timedelta,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "scopes": list(scopes),
        "iat": int(issued.timestamp()),
        "exp": int((issued + expires_in).timestamp()),
    }
    token: str = jwt.encode(claims, key.get_secret_value(), algorithm=JWT_ALGORITHM)
    return token


def decode_access_token(token: str, *, key: SecretStr) -> TokenClaims:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != JWT_ALGORITHM:
            raise InvalidTokenError(f"token algorithm must be {JWT_ALGORITHM}")
        claims = jwt.decode(
            token,
            key.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            options=_DECODE_OPTIONS,
        )
    except JWTError as exc:
        raise InvalidTokenError(str(exc)) from None
    if int(claims["iat"]) > datetime.now(UTC).timestamp() + _CLOCK_SKEW_S:
        raise InvalidTokenError("token issued in the future")
    subject = claims.get("sub")
    scopes = claims.get("scopes", [])
    if not isinstance(subject, str) or not isinstance(scopes, list):
        raise InvalidTokenError("token claims are malformed")
    return TokenClaims(
        subject=subject,
        scopes=tuple(str(s) for s in scopes),
        expires=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )
