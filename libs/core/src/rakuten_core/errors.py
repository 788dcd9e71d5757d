"""Domain exceptions shared by every service.

Serving maps them to HTTP statuses in one place; CLIs map them to exit codes. Messages are
written for the person who sent the input and never contain secrets or raw image bytes.
"""

from __future__ import annotations


class RakutenError(Exception):
    """Base class of every error the platform raises on purpose."""


class InvalidInputError(RakutenError):
    """The input is malformed or violates a documented limit (HTTP 422, CLI exit 2)."""


class InputTooLargeError(InvalidInputError):
    """The input is over a size limit (bytes, pixels, characters) (HTTP 413)."""


class UnsupportedMediaError(InvalidInputError):
    """The bytes are not an image of an accepted format, whatever they claim to be (HTTP 415)."""


class ConflictError(RakutenError):
    """The request contradicts a recorded answer that is final (HTTP 409).

    A second feedback on one prediction, for instance: the input is well formed, but sending it
    again can never succeed.
    """


class ModelUnavailableError(RakutenError):
    """No usable model is loaded or the bundle cannot be read (HTTP 503)."""


class BundleError(ModelUnavailableError):
    """A model bundle is missing files, has an unknown schema version or is inconsistent."""


class OverloadedError(RakutenError):
    """The service is at capacity and asks the caller to retry later (HTTP 503 + Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseUnavailableError(RakutenError):
    """The database does not answer; the caller should retry (HTTP 503 + Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DataValidationError(RakutenError):
    """The data cannot be used for training (missing columns, unknown labels, ...)."""


class DownloadError(RakutenError):
    """Data could not be fetched or failed verification."""


class ConfigurationError(RakutenError):
    """Settings are missing or unsafe for the current environment."""
