"""Fixtures of the batch-prediction tests: a real small bundle and real challenge rows/images."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rakuten_core.bundle import load_bundle
from tests.utils.predict_data import make_labelled_products


@pytest.fixture(scope="session")
def predict_bundle_dir(small_bundle_dir: Path) -> Path:
    """The training service's small real bundle (production architecture, trained on a sample)."""
    return small_bundle_dir


@pytest.fixture(scope="session")
def predict_bundle(predict_bundle_dir: Path) -> Any:
    return load_bundle(predict_bundle_dir)


@pytest.fixture
def labelled_products(tmp_path: Path) -> Path:
    """Real rows, labels and images with every degraded case (see ``make_labelled_products``)."""
    return make_labelled_products(tmp_path)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """The CLI configures logging on a stderr that CliRunner closes afterwards; undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
