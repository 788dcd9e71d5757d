"""Fixtures shared across the test packages. Each block is self-contained; add yours below."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.compose_stack import Stack, start_stack


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


# --- MLflow: no tracking/registry URI leaks from one test into the next ---------------------
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


# The session's own values, taken before any test runs: a module- or session-scoped fixture that
# trains in-process (set up before the function-scoped reset below) must not become the baseline.
_MLFLOW_ENV_AT_START = {name: os.environ.get(name) for name in _MLFLOW_ENV}


def _restore_mlflow_uris() -> None:
    for name, value in _MLFLOW_ENV_AT_START.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry_utils  # noqa: PLC0415
        from mlflow.tracking._tracking_service import utils as tracking_utils  # noqa: PLC0415

        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None


@pytest.fixture(autouse=True)
def _reset_mlflow_uris() -> Iterator[None]:
    """Undo ``mlflow.set_tracking_uri``/``set_registry_uri`` made by code under test.

    ``rakuten-train`` run in-process points MLflow's process-wide URIs (and, through MLflow,
    the ``MLFLOW_*_URI`` environment variables) at the store it used, for example a server
    that is stopped once its test ends; a later test would otherwise talk to that dead server.
    They are reset before each test too, since a wider-scoped fixture may have trained since.
    """
    _restore_mlflow_uris()
    yield
    _restore_mlflow_uris()


# --- the compose stack: one per session, shared by tests/e2e and tests/security --------------
@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole platform under docker-compose (tests/utils/compose_stack.py)."""
    yield from start_stack(tmp_path_factory)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests on the compose stack last, together: the stack then lives only for them.

    Among them, those marked ``stack_last`` (they kill or recreate services) come after the
    others, which then see the stack as it was started, and ``stack_restart`` (down and up
    again) after all.
    """
    on_stack = [item for item in items if "compose_stack" in getattr(item, "fixturenames", ())]
    if on_stack:
        others = [item for item in items if item not in on_stack]
        on_stack.sort(
            key=lambda item: (
                item.get_closest_marker("stack_restart") is not None,
                item.get_closest_marker("stack_last") is not None,
            )
        )
        items[:] = others + on_stack
