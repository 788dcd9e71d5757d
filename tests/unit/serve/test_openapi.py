"""Every route is in the OpenAPI document with a summary and an example of what it returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

ROUTES = {
    ("post", "/token"),
    ("post", "/predict"),
    ("post", "/feedback"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/model"),
    ("get", "/metrics"),
    ("post", "/admin/reload"),
    ("get", "/"),
}


def _resolve(doc: dict[str, Any], node: Any, depth: int = 0) -> str:
    """The JSON of ``node`` with its ``$ref`` schemas appended (a few levels deep)."""
    text = json.dumps(node)
    if depth < 3:
        refs = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
        for ref in sorted(refs):
            text += _resolve(doc, doc["components"]["schemas"][ref], depth + 1)
    return text


def test_every_route_is_documented_with_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented >= ROUTES
    for method, path in ROUTES:
        operation = doc["paths"][path][method]
        assert operation.get("summary"), (method, path)
        success = operation["responses"]["200"]
        assert "example" in _resolve(doc, success), f"{method} {path}: no response example"
        if "requestBody" in operation:
            assert "example" in _resolve(doc, operation["requestBody"]) or path == "/token", path
    security = doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert security["flows"]["password"]["tokenUrl"] == "token"
    assert set(security["flows"]["password"]["scopes"]) == {"predict", "label", "admin"}
