"""What makes a value acceptable as a secret, and how the stack's secrets are made.

Every secret the platform runs with is checked by :func:`check_secret`: set, at least as long as
its kind asks, not a placeholder, and not a value the repository publishes. The published
values (every value given to a secret-like name in ``.env.example``, ``README.md``, ``docs/``,
the compose file and the tests) are kept as SHA-256 digests in ``published_secrets.txt`` beside
this module, written by ``scripts/published_secrets.py``; a test runs that scan again and fails
when a published value is missing from the file. Messages name the variable, never the value.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import lru_cache
from importlib import resources

from rakuten_core.errors import ConfigurationError

PUBLISHED_FILE = "published_secrets.txt"
# Generated secrets are URL-safe base64 (secrets.token_urlsafe): they go into URLs (Redis),
# pgpass lines and config files unescaped. Values set by hand must use the same alphabet.
SECRET_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
GENERATED_BYTES = 36  # 48 characters of URL-safe base64
_PLACEHOLDER_WORDS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "admin",
        "example",
        "dev",
        "development",
        "test",
        "xxx",
        "todo",
        "replace-me",
        "please-change",
    }
)
_PLACEHOLDER_PREFIXES = ("change", "example", "test-only", "replace")


def digest(value: str) -> str:
    """The SHA-256 hex digest the published list keeps for ``value``."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def published_digests() -> frozenset[str]:
    """Digests of every secret-like value published in the repository."""
    text = resources.files("rakuten_core").joinpath(PUBLISHED_FILE).read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_placeholder(raw: str) -> bool:
    """True when ``raw`` is empty or reads as a placeholder rather than a secret."""
    lowered = raw.strip().lower()
    return lowered in _PLACEHOLDER_WORDS or lowered.startswith(_PLACEHOLDER_PREFIXES)


def is_published(raw: str) -> bool:
    """True when ``raw`` appears in the repository (its digest is in the published list)."""
    return digest(raw) in published_digests() or digest(raw.strip()) in published_digests()


def check_secret(raw: str | None, *, name: str, min_chars: int) -> str:
    """Return ``raw`` when it is usable as a secret; else raise naming ``name`` only.

    Raises:
        ConfigurationError: unset, shorter than ``min_chars``, a placeholder, or published.
    """
    if raw is None or not raw.strip():
        raise ConfigurationError(f"{name} must be set")
    if is_published(raw):
        raise ConfigurationError(
            f"{name} is a value published in the repository; use a generated secret"
        )
    if is_placeholder(raw):
        raise ConfigurationError(f"{name} is a placeholder; use a generated secret")
    if len(raw) < min_chars:
        raise ConfigurationError(f"{name} must be at least {min_chars} characters")
    return raw


def generate() -> str:
    """A new random secret (48 URL-safe characters)."""
    return secrets.token_urlsafe(GENERATED_BYTES)
