"""pytest fixtures of the serving tests; conftest files and test modules import them.

``serve_bundle_dir`` is the training service's ``small_bundle_dir`` when that fixture exists,
else a small real bundle trained by :mod:`tests.utils.serve_bundle` (cached in pytest's cache,
keyed by the helpers' source, so repeated runs do not retrain).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rakuten_core.bundle import METADATA_FILE
from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor, load_model
from rakuten_serve.settings import ServeSettings
from tests.utils import bundle_metadata, serve_bundle
from tests.utils.serve_app import DEFAULT_USERS, migrate_and_add_users, serve_settings


def _own_bundle(request: pytest.FixtureRequest, tmp_factory: pytest.TempPathFactory) -> Path:
    sources = (serve_bundle.__file__, bundle_metadata.__file__)  # the model, its bundle.json
    key = hashlib.sha256(b"".join(Path(f).read_bytes() for f in sources)).hexdigest()[:12]
    cache = getattr(request.config, "cache", None)
    cache_root = (
        Path(cache.mkdir("rakuten-serve-bundle")) if cache else tmp_factory.mktemp("bundle-cache")
    )
    cached = cache_root / key
    if not (cached / METADATA_FILE).is_file():
        serve_bundle.make_serve_bundle(cached)
    target = tmp_factory.mktemp("serve-bundle") / "bundle"
    shutil.copytree(cached, target)
    return target


@pytest.fixture(scope="session")
def serve_bundle_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real small bundle (the training service's when available)."""
    try:
        return Path(request.getfixturevalue("small_bundle_dir"))
    except pytest.FixtureLookupError:
        return _own_bundle(request, tmp_path_factory)


def copy_bundle_as(source: Path, target: Path, version: str) -> Path:
    """A copy of a real bundle under another model_version (a second model to reload)."""
    shutil.copytree(source, target)
    meta_file = target / METADATA_FILE
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["model_version"] = version
    meta_file.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def shared_predictor(serve_bundle_dir: Path) -> Predictor:
    """One loaded model shared by the tests that never reload it."""
    return Predictor(load_model(str(serve_bundle_dir), cache_dir=Path("unused")), top_k=5)


@pytest.fixture
def settings(tmp_path: Path, serve_bundle_dir: Path) -> ServeSettings:
    s = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    migrate_and_add_users(s, DEFAULT_USERS)
    return s


@pytest.fixture
def client(settings: ServeSettings, shared_predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(settings, shared_predictor)) as test_client:
        yield test_client
