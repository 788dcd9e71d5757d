"""An exception nothing handles: JSON 500 with the request id, logged, counted, connection kept."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from rakuten_core.logs import RequestIdFilter
from rakuten_serve.app import create_app
from rakuten_serve.predictor import Predictor
from tests.utils.live_server import live_server
from tests.utils.serve_app import serve_settings

pytestmark = [pytest.mark.slow]


class _Boom(RuntimeError):
    pass


def test_unexpected_exception_is_a_json_500_on_a_kept_connection(
    tmp_path: Path,
    serve_bundle_dir: Path,
    shared_predictor: Predictor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = serve_settings(tmp_path, model_path=str(serve_bundle_dir))
    app = create_app(settings, shared_predictor)

    @app.get("/boom")
    async def boom() -> None:  # a bug anywhere in a handler
        raise _Boom("secret-looking detail that must not reach the client")

    connections: list[object] = []
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())  # what configure_logging puts on every handler
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        first = http.get("/health/live")
        assert first.status_code == 200
        answer = http.get("/boom")
        assert answer.status_code == 500
        body = answer.json()
        assert body == {
            "error": "internal_error",
            "detail": "internal server error",
            "request_id": answer.headers["x-request-id"],
        }
        # the same keep-alive connection still answers
        after = http.get("/health/live")
        assert after.status_code == 200
        for response in (first, answer, after):
            stream = response.extensions["network_stream"]
            connections.append(stream.get_extra_info("socket").getsockname())
        assert connections[0] == connections[1] == connections[2]
        metrics = http.get("/metrics").text

    rid = body["request_id"]
    tracebacks = [r for r in caplog.records if r.exc_info and r.exc_info[0] is _Boom]
    assert len(tracebacks) == 1
    assert tracebacks[0].request_id == rid  # type: ignore[attr-defined]
    access = [
        r
        for r in caplog.records
        if r.name == "rakuten_serve.access" and getattr(r, "status", 0) == 500
    ]
    assert len(access) == 1 and access[0].__dict__["path"] == "/boom"
    assert 'rakuten_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics
