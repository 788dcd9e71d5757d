"""bcrypt password hashing with its 72-byte limit made explicit.

bcrypt only reads the first 72 bytes of a password; bcrypt >= 5 refuses longer ones. Rather
than silently truncating (two passwords sharing 72 bytes would match), longer passwords are
refused with a clear message, at user creation and at login alike.
"""

from __future__ import annotations

from functools import cache

import bcrypt

from rakuten_core.errors import InvalidInputError

BCRYPT_MAX_BYTES = 72
MIN_PASSWORD_CHARS = 8
_ROUNDS = 12


@cache
def _dummy_hash() -> bytes:
    """Verified against when the user does not exist, so timing does not reveal which names
    exist: same cost as the real hashes (a cheaper one answered unknown users 100x faster)."""
    return bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(rounds=_ROUNDS))


def check_password_length(password: str) -> bytes:
    """The password's UTF-8 bytes; raises ``InvalidInputError`` over bcrypt's limit."""
    raw = password.encode("utf-8")
    if len(raw) > BCRYPT_MAX_BYTES:
        raise InvalidInputError(
            f"password is {len(raw)} bytes in UTF-8; bcrypt accepts at most {BCRYPT_MAX_BYTES} "
            "bytes (accented letters take 2 bytes)"
        )
    return raw


def hash_password(password: str, *, rounds: int = _ROUNDS) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInputError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    raw = check_password_length(password)
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; a ``None`` hash burns the same time and returns False."""
    raw = check_password_length(password)
    if password_hash is None:
        bcrypt.checkpw(raw, _dummy_hash())
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:  # a corrupt hash in the database
        return False
