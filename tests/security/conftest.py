"""Fixtures of the security tests (defined in ``tests/utils/serve_fixtures.py``)."""

from tests.utils.serve_fixtures import client, serve_bundle_dir, settings, shared_predictor

__all__ = ["client", "serve_bundle_dir", "settings", "shared_predictor"]
