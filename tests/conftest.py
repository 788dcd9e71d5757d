"""Fixtures shared across the test packages. Each block is self-contained; add yours below."""

from __future__ import annotations

from pathlib import Path

import pytest


# --- training service: a small real bundle -------------------------------------------------
@pytest.fixture(scope="session")
def small_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle (``model.keras`` + ``bundle.json``) trained on a 400-row generated sample.

    Built once per session (about a minute on 2 CPU cores) by
    :func:`tests.utils.bundles.build_small_bundle`; its evaluation reports are in the sibling
    ``reports/`` directory and the data it was trained on in ``raw/`` and ``processed/``.
    Treat it as read-only: it is shared by every test of the session.
    """
    from tests.utils.bundles import build_small_bundle  # noqa: PLC0415

    return build_small_bundle(tmp_path_factory.mktemp("small_bundle"))
