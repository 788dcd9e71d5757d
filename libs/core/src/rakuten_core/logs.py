"""Logging set-up for every entry point: console plus a rotating JSON-lines file.

``configure_logging("serve")`` writes human-readable lines to stderr and JSON lines to
``logs/serve.log`` (rotated by size); each JSON line names its process (``pid``: several
workers append to one file). A request id set with :data:`request_id` in a context is
attached to every record logged in that context (``-`` outside one).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from contextvars import ContextVar
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str] = ContextVar("request_id", default="-")

_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(process)d %(name)s %(request_id)s %(message)s"
_HANDLER_MARK = "_rakuten_handler"


class RequestIdFilter(logging.Filter):
    """Adds the current request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(
    service: str,
    *,
    log_dir: str | Path = "logs",
    level: str | int = "INFO",
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    console: bool = True,
) -> Path:
    """Configure the root logger for ``service``; idempotent. Returns the log file path."""
    directory = Path(log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    log_file = directory / f"{service}.log"

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)

    request_filter = RequestIdFilter()
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    file_handler.setFormatter(
        JsonFormatter(
            _JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time", "process": "pid"}
        )
    )
    handlers: list[logging.Handler] = [file_handler]
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
        handlers.append(stream)
    for handler in handlers:
        handler.addFilter(request_filter)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    logging.getLogger(__name__).debug("logging configured for %s -> %s", service, log_file)
    return log_file
