"""What every ``rakuten-train`` command does first: settings, then logging; ``--set`` values.

Shared by :mod:`rakuten_train.cli` and :mod:`rakuten_train.loop_cli` (neither imports the other's
commands).
"""

from __future__ import annotations

import os
from typing import Any

import typer
import yaml
from pydantic import ValidationError

from rakuten_core.logs import configure_logging
from rakuten_train.settings import TrainSettings


def start(verbose: bool) -> TrainSettings:
    """Settings first (bad ones exit 2 before any work), then logging as they say."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        settings = TrainSettings()
    except ValidationError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(
        "train", log_dir=settings.log_dir, level=settings.log_level if verbose else "WARNING"
    )
    return settings


def parse_set(values: list[str]) -> dict[str, Any]:
    """``--set key=value`` options as a dict, each value read as YAML (numbers, booleans)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out
