"""Where the repository and the shared real data live, resolved from this file."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "rakuten"


def shared_data(*parts: str) -> Path:
    """Path under ``../shared/data/rakuten``; skips the test when the shared data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared real data not available: {path}")
    return path
