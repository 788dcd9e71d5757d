"""User accounts: creation, scopes, disabling, listing and lookup (used by the CLI and the API).

Scopes are least privilege: ``predict`` asks the model, ``label`` gives the true code of one's
own predictions (``POST /feedback``, whose answers become training data and live accuracy),
``admin`` reloads the model. None implies another: an admin who labels needs ``label`` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rakuten_core.errors import InvalidInputError
from rakuten_core.records import User
from rakuten_serve.passwords import hash_password

SCOPES: dict[str, str] = {
    "predict": "Call /predict.",
    "label": "Give the true code of your own predictions (/feedback): training data.",
    "admin": "Reload the model; with label, give feedback on any user's prediction.",
}
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")


class UserNotFoundError(InvalidInputError):
    """No user with that name."""


@dataclass(frozen=True)
class UserInfo:
    """What the API needs to know about an authenticated user."""

    username: str
    scopes: tuple[str, ...]
    disabled: bool


def _info(user: User) -> UserInfo:
    return UserInfo(user.username, tuple(user.scope_list), user.disabled)


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidInputError(f"unknown scope(s) {unknown}; known: {sorted(SCOPES)}")
    return sorted(set(scopes))


def create_user(
    sessions: sessionmaker[Session], username: str, password: str, scopes: list[str]
) -> UserInfo:
    if not _USERNAME.match(username):
        raise InvalidInputError(
            "username must be 3-64 characters among letters, digits and _ . @ -"
        )
    clean_scopes = validate_scopes(scopes)
    user = User(
        username=username,
        password_hash=hash_password(password),
        scopes=" ".join(clean_scopes),
        disabled=False,
    )
    with sessions() as session:
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            raise InvalidInputError(f"user {username!r} already exists") from None
        return _info(user)


def set_disabled(sessions: sessionmaker[Session], username: str, *, disabled: bool) -> UserInfo:
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserNotFoundError(f"no user {username!r}")
        user.disabled = disabled
        session.commit()
        return _info(user)


def change_scopes(
    sessions: sessionmaker[Session],
    username: str,
    *,
    grant: list[str] | None = None,
    revoke: list[str] | None = None,
) -> UserInfo:
    """Add ``grant`` to and remove ``revoke`` from a user's scopes.

    Takes effect on the next request once the user cache expires (``RAKUTEN_USER_CACHE_SECONDS``):
    a revoked scope stops working with the tokens already issued, while a granted one needs a new
    token (a token carries the scopes it was issued with).
    """
    added, removed = validate_scopes(grant or []), validate_scopes(revoke or [])
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserNotFoundError(f"no user {username!r}")
        user.scopes = " ".join(sorted((set(user.scope_list) | set(added)) - set(removed)))
        session.commit()
        return _info(user)


def list_users(sessions: sessionmaker[Session]) -> list[UserInfo]:
    with sessions() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.username))]


def get_credentials(sessions: sessionmaker[Session], username: str) -> tuple[UserInfo, str] | None:
    """The user and their password hash, or ``None``."""
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        return None if user is None else (_info(user), user.password_hash)


def get_user(sessions: sessionmaker[Session], username: str) -> UserInfo | None:
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        return None if user is None else _info(user)
