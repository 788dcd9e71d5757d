"""The Grafana dashboards checked structurally (Grafana itself cannot run here), as the
kubernetes-mixin lints its own: valid JSON, the datasource and replica variables, a unit and a
description on every panel, the alert's threshold drawn on every panel that names an alert,
Grafana's rate interval, the model-load and promotion annotations, links between the dashboards,
and only metrics, jobs and recording rules that exist. The real-Prometheus test runs every query
against live data."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from rakuten_core.job_metrics import JOB_TRAIN, JobRun, failure_registry, success_registry
from rakuten_serve.telemetry import PrometheusTelemetry
from rakuten_train.loop_report import retrain_run, schedule_figure, train_promotion_figures
from tests.utils.monitoring import (
    DATASOURCES_DIR,
    INSTANCE_VARIABLE,
    MONITOR_METRICS,
    PROMETHEUS_YML,
    PROVIDERS_DIR,
    RATE_INTERVAL,
    alert_rules,
    dashboards,
    load_yaml,
    metric_names,
    panel_queries,
    panels,
    recording_rules,
    scrape_jobs,
    selectors,
)

DASHBOARD_FILES = {
    "rakuten-api.json",
    "rakuten-model.json",
    "rakuten-quality.json",
    "rakuten-jobs.json",
    "rakuten-slo.json",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PUSHED_JOBS = {"rakuten_train", "rakuten_evaluate", "rakuten_predict", "rakuten_retrain"}
ANNOTATIONS = {"Model reloads", "Promotion decisions"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
ALERT_NAME = re.compile(r"\bRakuten[A-Z][A-Za-z0-9]+\b")


def _names(registries: list[Any]) -> set[str]:
    return {s.name for r in registries for family in r.collect() for s in family.samples}


def _serve_metrics() -> set[str]:
    text = PrometheusTelemetry().exposition().decode()
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES[family.type]
    }


def _pushed_metrics() -> set[str]:
    """Every figure a batch job pushes, taken from the code that pushes them."""
    full = JobRun(JOB_TRAIN, rows=1, weighted_f1=0.8, model_name="m", model_version="1")
    full.reused = False
    full.extra.extend(
        train_promotion_figures(promoted=True, registered=True, challenger_f1=0.8, champion_f1=0.7)
    )
    gate = {"checks": {"test_split": {"challenger_f1": 0.8, "champion_f1": 0.7}}}
    retrain = retrain_run(gate, outcome="promoted", served_version="1")
    retrain.extra.append(schedule_figure(86400))
    return _names(
        [
            success_registry(full, duration_s=1, finished_at=2),
            success_registry(retrain, duration_s=1, finished_at=2),
            failure_registry(finished_at=3),
        ]
    )


def _provisioned_uid() -> str:
    (provisioned,) = [
        ds for path in DATASOURCES_DIR.glob("*.yml") for ds in load_yaml(path)["datasources"]
    ]
    assert provisioned["type"] == "prometheus"
    assert provisioned["url"] == "http://prometheus:9090"
    uid: str = provisioned["uid"]
    return uid


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_provisioning_loads_the_dashboards_folder() -> None:
    (provider,) = [p for path in PROVIDERS_DIR.glob("*.yml") for p in load_yaml(path)["providers"]]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_five_dashboards_with_unique_uids_and_panel_ids() -> None:
    found = dashboards()
    assert set(found) == DASHBOARD_FILES
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in found.items():
        assert name == f"{dashboard['uid']}.json"
        top = dashboard["panels"]  # rows included
        ids = [p["id"] for p in top] + [c["id"] for p in top for c in p.get("panels", [])]
        assert len(set(ids)) == len(ids), name


def test_every_panel_has_the_datasource_variable_a_unit_a_description_and_a_query() -> None:
    for dashboard in dashboards().values():
        for panel in panels(dashboard):
            where = f"{dashboard['uid']}: {panel['title']}"
            assert panel["datasource"] == DATASOURCE, where
            assert panel["fieldConfig"]["defaults"]["unit"], where
            assert panel["description"], where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, where
                assert target["expr"].strip() and target["refId"], where


def test_the_datasource_variable_defaults_to_the_provisioned_prometheus() -> None:
    uid = _provisioned_uid()
    for dashboard in dashboards().values():
        variable = _variables(dashboard)["datasource"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == uid, dashboard["uid"]


def test_serve_panels_follow_the_replica_variable() -> None:
    """A dashboard with ``$instance`` filters every raw serve series by it (recording rules are
    per job, all replicas: what the alerts read); one without it never uses it."""
    for dashboard in dashboards().values():
        variables = _variables(dashboard)
        queries = [q for q in panel_queries() if q.source == f"dashboard {dashboard['uid']}"]
        if "instance" not in variables:
            assert not [q.label for q in queries if INSTANCE_VARIABLE in q.expr]
            continue
        instance = variables["instance"]
        assert instance["datasource"] == DATASOURCE
        assert 'up{job="serve"}' in instance["definition"] and instance["allValue"] == ".*"
        recorded = recording_rules()
        for query in queries:
            if query.name.startswith("annotation "):
                continue  # annotations mark every replica's loads
            for selector in selectors(query.expr):
                name = selector.split("{", 1)[0]
                if 'job="serve"' in selector and name not in recorded:
                    assert f'instance=~"{INSTANCE_VARIABLE}"' in selector, query.label


def test_every_panel_that_names_an_alert_draws_its_threshold() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    named_somewhere: set[str] = set()
    for dashboard in dashboards().values():
        for panel in panels(dashboard):
            where = f"{dashboard['uid']}: {panel['title']}"
            named = set(ALERT_NAME.findall(panel["description"]))
            assert named <= alerts, f"{where} names an alert that does not exist: {named - alerts}"
            named_somewhere |= named
            if not named:
                continue
            defaults = panel["fieldConfig"]["defaults"]
            drawn = len(defaults.get("thresholds", {}).get("steps", [])) >= 2
            series = any(t["legendFormat"].startswith("threshold") for t in panel["targets"])
            assert drawn or series, f"{where}: no threshold for {sorted(named)}"
            if drawn and panel["type"] == "timeseries":
                assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", where
    slo_alerts = {r["alert"] for r in alert_rules() if "slo" in r.get("labels", {})}
    assert slo_alerts and slo_alerts <= named_somewhere


def test_rates_use_grafanas_rate_interval() -> None:
    for query in panel_queries():
        for window in re.findall(r"\[([^\]]+)\]", query.expr):
            # longer windows (the last hour, 30 days) come from recording rules
            assert window == RATE_INTERVAL, query.label


def test_model_loads_and_promotions_are_annotated_and_dashboards_link() -> None:
    uids = {d["uid"] for d in dashboards().values()}
    for dashboard in dashboards().values():
        annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
        assert set(annotations) >= ANNOTATIONS, dashboard["uid"]
        for name in ANNOTATIONS:
            # the event's time is the value (a Unix time in ms), so one event per load/decision
            assert annotations[name]["useValueForTime"] is True
            assert "* 1000" in annotations[name]["expr"]  # Grafana reads the time in ms
            assert annotations[name]["datasource"] == DATASOURCE
        (tags,) = [link for link in dashboard["links"] if link["type"] == "dashboards"]
        assert tags["tags"] == ["rakuten"] and tags["keepTime"] and tags["includeVars"]
        assert "rakuten" in dashboard["tags"]
        for panel in panels(dashboard):
            for link in panel.get("links", []):
                found = re.match(r"/d/([a-z0-9-]+)", link["url"])
                assert found and found.group(1) in uids, link["url"]


def test_queries_read_only_existing_metrics_and_jobs() -> None:
    known = _serve_metrics() | MONITOR_METRICS | _pushed_metrics() | {"up"}
    jobs = set(scrape_jobs(load_yaml(PROMETHEUS_YML))) | PUSHED_JOBS
    recorded = recording_rules()
    for query in panel_queries():
        assert metric_names(query.expr) <= known, query.label
        for selector in selectors(query.expr):
            name = selector.split("{", 1)[0]
            assert name in known or name in recorded, query.label
            for job in re.findall(r'job=~?"([^"]+)"', selector):
                # a regex of pushed jobs, or one job
                assert job in jobs or job == "rakuten_.*" or set(job.split("|")) <= jobs, (
                    query.label
                )


def test_serve_metrics_are_known_to_the_check() -> None:
    """The list the dashboards are checked against comes from serve's code."""
    serve = _serve_metrics()
    assert {"rakuten_http_requests_total", "rakuten_model_info", "rakuten_feedback_total"} <= serve
    assert "rakuten_model_loaded_timestamp_seconds" in serve
    assert "rakuten_live_accuracy" not in serve


def test_dashboards_cover_what_operators_need() -> None:
    queries = panel_queries()
    reads: dict[str, set[str]] = {}
    recorded: dict[str, set[str]] = {}
    for q in queries:
        reads.setdefault(q.source, set()).update(metric_names(q.expr))
        recorded.setdefault(q.source, set()).update(s.split("{", 1)[0] for s in selectors(q.expr))
    assert {
        "rakuten_http_requests_total",
        "rakuten_http_request_duration_seconds_bucket",
        "rakuten_rate_limited_requests_total",
        "rakuten_auth_failures_total",
        "rakuten_http_requests_in_flight",
        "rakuten_batch_queue_depth",
    } <= reads["dashboard rakuten-api"]
    assert {
        "rakuten_predictions_total",
        "rakuten_prediction_confidence_bucket",
        "rakuten_batch_size_bucket",
        "rakuten_model_info",
        "rakuten_model_loaded_timestamp_seconds",
        "rakuten_model_reloads_total",
        "rakuten_prediction_records_pending",
        "rakuten_prediction_records_dropped_total",
    } <= reads["dashboard rakuten-model"]
    assert {
        "rakuten_drift_score",
        "rakuten_live_accuracy",
        "rakuten_live_weighted_f1",
        "rakuten_live_class_recall",
        "rakuten_feedback_total",
        "rakuten_shadow_agreement",
        "rakuten_shadow_live_accuracy",
        "rakuten_shadow_predictions_total",
        "rakuten_shadow_dropped_total",
    } <= reads["dashboard rakuten-quality"]
    assert {
        "rakuten_job_last_success_timestamp_seconds",
        "rakuten_job_last_failure_timestamp_seconds",
        "rakuten_job_rows",
        "rakuten_job_duration_seconds",
        "rakuten_retrain_challenger_weighted_f1",
        "rakuten_retrain_champion_weighted_f1",
        "rakuten_retrain_promoted",
        "rakuten_retrain_decision_info",
    } <= reads["dashboard rakuten-jobs"]
    assert {
        "job:rakuten_slo_predict_errors:ratio_rate30d",
        "job:rakuten_slo_predict_slow:ratio_rate30d",
        "job:rakuten_slo_predict_availability:error_budget",
        "job:rakuten_slo_predict_latency:error_budget",
    } <= recorded["dashboard rakuten-slo"]
