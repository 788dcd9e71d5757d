"""What serve's HTTP metrics count: clients' requests, not probes or scrapes; and the buckets
the latency objective needs. A bare app with serve's own middleware and telemetry: no model."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from rakuten_serve.metrics import (
    LATENCY_BUCKETS,
    LATENCY_OBJECTIVE_S,
    SLI_ROUTES,
    UNMEASURED_ROUTES,
)
from rakuten_serve.middleware import RequestContextMiddleware
from rakuten_serve.telemetry import PrometheusTelemetry
from tests.utils.monitoring import RULES_DIR
from tests.utils.prom_text import sample_labels, sample_value


@pytest.fixture
def telemetry() -> PrometheusTelemetry:
    return PrometheusTelemetry()


@pytest.fixture
def client(telemetry: PrometheusTelemetry) -> TestClient:
    """/health/ready answers 503 as during a database outage; /predict answers 200 or 500."""
    app = FastAPI()

    @app.get("/health/live")
    def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready")
    def ready() -> Response:
        return Response(status_code=503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(telemetry.exposition(), media_type=telemetry.content_type)

    @app.post("/predict")
    def predict(fail: bool = False) -> Response:
        return Response(status_code=500 if fail else 200)

    return TestClient(RequestContextMiddleware(app, telemetry))


def test_probes_and_scrapes_are_not_counted(client: TestClient) -> None:
    for _ in range(5):
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200
        assert client.get("/metrics").status_code == 200
    text = client.get("/metrics").text
    assert {s["route"] for s in sample_labels(text, "rakuten_http_requests_total")} == set()
    assert sample_labels(text, "rakuten_http_request_duration_seconds_count") == []
    assert sample_value(text, "rakuten_http_requests_in_flight") == 1  # this scrape, in flight


def test_a_probe_503_does_not_make_a_5xx_ratio(client: TestClient) -> None:
    assert client.post("/predict").status_code == 200
    assert client.post("/predict", params={"fail": "true"}).status_code == 500
    for _ in range(10):
        assert client.get("/health/ready").status_code == 503
    text = client.get("/metrics").text
    counted = {
        (s["route"], s["status"]) for s in sample_labels(text, "rakuten_http_requests_total")
    }
    assert counted == {("/predict", "200"), ("/predict", "500")}  # 1 in 2, not 11 in 12
    assert sample_value(text, "rakuten_http_request_duration_seconds_count", route="/predict") == 2


def test_the_sli_routes_exist_from_the_model_load(telemetry: PrometheusTelemetry) -> None:
    """A counter first seen at 3 reads as no increase to rate(): the SLIs start from 0."""
    telemetry.model_loaded(name="m", version="1", run_id=None, source="models/current")
    text = telemetry.exposition().decode()
    for route in SLI_ROUTES:
        ok = {"route": route, "method": "POST"}
        assert sample_value(text, "rakuten_http_requests_total", status="200", **ok) == 0
        assert sample_value(text, "rakuten_http_request_duration_seconds_count", **ok) == 0
    assert not set(SLI_ROUTES) & UNMEASURED_ROUTES


def test_model_loaded_timestamp_changes_at_each_load(telemetry: PrometheusTelemetry) -> None:
    telemetry.model_loaded(name="m", version="1", run_id=None, source="models/current")
    first = sample_value(telemetry.exposition().decode(), "rakuten_model_loaded_timestamp_seconds")
    telemetry.model_loaded(name="m", version="2", run_id=None, source="models/current")
    second = sample_value(telemetry.exposition().decode(), "rakuten_model_loaded_timestamp_seconds")
    assert first is not None and second is not None and 0 < first <= second


def test_latency_buckets_fit_a_10_to_400_ms_api() -> None:
    buckets = list(LATENCY_BUCKETS)
    assert buckets == sorted(set(buckets))
    assert LATENCY_OBJECTIVE_S in buckets
    api_range = [b for b in buckets if 0.01 <= b <= 0.5]
    # no gap wider than 100 ms where /predict answers, so a p95 of 0.30 s reads as 0.30 s
    assert max(b - a for a, b in zip(api_range, api_range[1:], strict=False)) <= 0.1 + 1e-9
    assert {0.3, 1.0} <= set(buckets)  # the objective, the p95 alert's threshold
    assert buckets[-1] >= 10  # a saturated server's tail stays visible


def test_the_latency_slo_reads_a_bucket_that_exists() -> None:
    """rules/slo.yml's le="..." is a bucket bound: otherwise the selector matches nothing."""
    rules = (RULES_DIR / "slo.yml").read_text(encoding="utf-8")
    bounds = {float(b) for b in re.findall(r'le="([^"]+)"', rules)}
    assert bounds == {LATENCY_OBJECTIVE_S}
    telemetry = PrometheusTelemetry()
    telemetry.request_finished(route="/predict", method="POST", status=200, seconds=0.29)
    telemetry.request_finished(route="/predict", method="POST", status=200, seconds=0.31)
    text = telemetry.exposition().decode()
    under = sample_value(
        text, "rakuten_http_request_duration_seconds_bucket", route="/predict", le="0.3"
    )
    assert under == 1
