"""A serve database (SQLite, migrated by serve's Alembic) and a bundle with a drift reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rakuten_core.categories import CODES
from rakuten_core.drift import DriftReference, build_reference
from rakuten_serve.db.migrate import upgrade
from tests.utils.drift_data import draw_features
from tests.utils.monitor import write_bundle_json


@pytest.fixture(scope="session")
def drift_reference() -> DriftReference:
    return build_reference(draw_features(np.random.default_rng(11), 2000), codes=CODES)


@pytest.fixture
def bundle_dir(tmp_path: Path, drift_reference: DriftReference) -> Path:
    return write_bundle_json(tmp_path / "bundle", drift_reference)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    return url
