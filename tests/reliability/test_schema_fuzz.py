"""Schemathesis over the whole OpenAPI schema, authenticated, against a real uvicorn server.

Every operation gets a bounded number of generated requests (valid and invalid); none may answer
5xx (other than documented 503s, which carry Retry-After) and every documented answer must match
its own schema and content type. ``RAKUTEN_FUZZ_EXAMPLES`` raises the count for a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.live_server import live_server
from tests.utils.serve_app import DEFAULT_USERS, PASSWORD, migrate_and_add_users, serve_settings

pytestmark = [pytest.mark.slow]

EXAMPLES = int(os.environ.get("RAKUTEN_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, serve_bundle_dir: Path, shared_predictor: Predictor
) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = serve_settings(tmp, model_path=str(serve_bundle_dir), rate_limit_enabled=False)
    # root labels too, so generated feedback reaches past the scope check (404, 409, 422)
    migrate_and_add_users(settings, {**DEFAULT_USERS, "root": ["predict", "admin", "label"]})
    with live_server(create_app(settings, shared_predictor)) as base_url:
        answer = httpx.post(
            f"{base_url}/token", data={"username": "root", "password": PASSWORD}, timeout=60
        )
        token = answer.json()["access_token"]
        yield base_url, {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def openapi(fuzz_server: tuple[str, dict[str, str]]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server[0]}/openapi.json")


schema = schemathesis.pytest.from_fixture("openapi")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_500_and_answers_match_the_schema(
    case: schemathesis.Case, fuzz_server: tuple[str, dict[str, str]]
) -> None:
    base_url, headers = fuzz_server
    case.call_and_validate(
        base_url=base_url,
        headers=headers,
        timeout=60,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
