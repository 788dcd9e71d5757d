"""The Grafana dashboards checked structurally (Grafana itself cannot run here): valid JSON, the
provisioned datasource uid on every panel and query, a unit on every panel, Grafana's rate
interval, and only metrics, jobs and recording rules that exist. The real-Prometheus test runs
every query against live data."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from rakuten_serve.telemetry import PrometheusTelemetry
from tests.utils.monitoring import (
    DATASOURCES_DIR,
    MONITOR_METRICS,
    PROMETHEUS_YML,
    PROVIDERS_DIR,
    RATE_INTERVAL,
    dashboards,
    load_yaml,
    metric_names,
    panel_queries,
    panels,
    recording_rules,
    scrape_jobs,
    selectors,
)

# The metrics other services export, from the shared contract (docs/monitoring.md).
PUSHED_METRICS = {
    "rakuten_job_duration_seconds",
    "rakuten_job_rows",
    "rakuten_job_weighted_f1",
    "rakuten_job_last_success_timestamp_seconds",
    "rakuten_job_model_info",
}
PUSHED_JOBS = {"rakuten_train", "rakuten_evaluate", "rakuten_predict"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _serve_metrics() -> set[str]:
    text = PrometheusTelemetry().exposition().decode()
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES[family.type]
    }


def _datasource_uid() -> str:
    (provisioned,) = [
        ds for path in DATASOURCES_DIR.glob("*.yml") for ds in load_yaml(path)["datasources"]
    ]
    assert provisioned["type"] == "prometheus"
    assert provisioned["url"] == "http://prometheus:9090"
    uid: str = provisioned["uid"]
    return uid


def test_provisioning_loads_the_dashboards_folder() -> None:
    (provider,) = [p for path in PROVIDERS_DIR.glob("*.yml") for p in load_yaml(path)["providers"]]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_three_dashboards_with_unique_uids() -> None:
    found = dashboards()
    assert set(found) == {"rakuten-api.json", "rakuten-model.json", "rakuten-quality.json"}
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids)
    for dashboard in found.values():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(set(ids)) == len(ids), dashboard["uid"]


def test_every_panel_has_the_datasource_a_unit_and_a_query() -> None:
    uid = _datasource_uid()
    for dashboard in dashboards().values():
        for panel in panels(dashboard):
            where = f"{dashboard['uid']}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert panel["fieldConfig"]["defaults"]["unit"], where
            assert panel["description"], where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, where
                assert target["expr"].strip() and target["refId"], where


def test_rates_use_grafanas_rate_interval() -> None:
    for query in panel_queries():
        for window in re.findall(r"\[([^\]]+)\]", query.expr):
            # longer windows (the last hour) come from recording rules
            assert window == RATE_INTERVAL, query.label


def test_queries_read_only_existing_metrics_and_jobs() -> None:
    known = _serve_metrics() | MONITOR_METRICS | PUSHED_METRICS | {"up"}
    jobs = set(scrape_jobs(load_yaml(PROMETHEUS_YML))) | PUSHED_JOBS
    recorded = recording_rules()
    for query in panel_queries():
        assert metric_names(query.expr) <= known, query.label
        for selector in selectors(query.expr):
            name = selector.split("{", 1)[0]
            assert name in known or name in recorded, query.label
            for job in re.findall(r'job=~?"([^"]+)"', selector):
                assert job in jobs or job == "rakuten_.*", query.label  # every pushed job


def test_serve_metrics_are_known_to_the_check() -> None:
    """The list the dashboards are checked against comes from serve's code."""
    serve = _serve_metrics()
    assert {"rakuten_http_requests_total", "rakuten_model_info", "rakuten_feedback_total"} <= serve
    assert "rakuten_live_accuracy" not in serve


def test_dashboards_cover_what_operators_need() -> None:
    reads = {
        name: set().union(*(metric_names(t["expr"]) for p in panels(d) for t in p["targets"]))
        for name, d in dashboards().items()
    }
    assert {
        "rakuten_http_requests_total",
        "rakuten_http_request_duration_seconds_bucket",
        "rakuten_rate_limited_requests_total",
        "rakuten_auth_failures_total",
        "rakuten_http_requests_in_flight",
        "rakuten_batch_queue_depth",
    } <= reads["rakuten-api.json"]
    assert {
        "rakuten_predictions_total",
        "rakuten_prediction_confidence_bucket",
        "rakuten_batch_size_bucket",
        "rakuten_model_info",
        "rakuten_model_reloads_total",
        "rakuten_prediction_records_pending",
        "rakuten_prediction_records_dropped_total",
    } <= reads["rakuten-model.json"]
    assert {
        "rakuten_drift_score",
        "rakuten_live_accuracy",
        "rakuten_live_weighted_f1",
        "rakuten_feedback_total",
        "rakuten_job_last_success_timestamp_seconds",
        "rakuten_shadow_agreement",
        "rakuten_shadow_live_accuracy",
        "rakuten_shadow_predictions_total",
        "rakuten_shadow_dropped_total",
    } <= reads["rakuten-quality.json"]
