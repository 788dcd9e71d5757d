"""The promotion gate's margins: the ``gate:`` section of ``params.yaml``, typed and validated.

A section of its own (not under ``train:``): changing a margin changes which model serves, not
how one is trained, so it must not make DVC retrain. Unknown keys are refused, as for ``train:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class GateParams(BaseModel):
    """When a challenger may replace the champion (``rakuten-train gate``, docs/lifecycle.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_margin: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="fixed test split: challenger weighted F1 > champion's + test_margin "
        "(strictly; the train job's promotion uses it too)",
    )
    holdout_margin: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="recent feedback holdout: challenger weighted F1 >= champion's - margin",
    )
    holdout_min_rows: int = Field(
        default=50, ge=1, description="fewer labelled holdout rows: the holdout check is skipped"
    )


def load_gate_params(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> GateParams:
    """Read the ``gate:`` section of ``path`` (missing file or section = defaults)."""
    section: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        section = dict(loaded.get("gate") or {})
    section.update(overrides or {})
    return GateParams.model_validate(section)
