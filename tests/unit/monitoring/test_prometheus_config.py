"""monitoring/prometheus checked by promtool, and by the shape the compose stack and the other
services rely on (monitoring/alertmanager: test_alertmanager_config.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rakuten_core.job_metrics import JOBS, failure_registry, success_registry
from rakuten_monitor.webhook_settings import DEFAULT_RETRAIN_ALERTS
from rakuten_train.loop_report import retrain_run, schedule_figure
from tests.utils.monitoring import (
    MONITOR_METRICS,
    PROMETHEUS_YML,
    RULE_TESTS_DIR,
    RULES_DIR,
    alert_rules,
    load_yaml,
    metric_names,
    scrape_jobs,
    selectors,
)


def _tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = shutil.which(name)
    assert path, f"{name} is missing: run `make system-deps` (scripts/system-deps.sh)"
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def test_promtool_checks_the_config_and_the_rules() -> None:
    config = _tool("promtool", "check", "config", "--syntax-only", str(PROMETHEUS_YML))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _tool("promtool", "check", "rules", *map(str, sorted(RULES_DIR.glob("*.yml"))))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_promtool_rule_tests_pass() -> None:
    files = sorted(p.name for p in RULE_TESTS_DIR.glob("*.yml"))
    assert files
    result = _tool("promtool", "test", "rules", *files, cwd=RULE_TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_rule_tests_fail_when_a_threshold_changes(tmp_path: Path) -> None:
    """The rule tests bite: the same tests against a loosened 5xx threshold fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace(
            "job:rakuten_api_requests_5xx:ratio_rate5m > 0.05",
            "job:rakuten_api_requests_5xx:ratio_rate5m > 0.5",
        )
        (tmp_path / "rules" / path.name).write_text(text, encoding="utf-8")
    for path in RULE_TESTS_DIR.glob("*.yml"):
        shutil.copy(path, tmp_path / "tests" / path.name)
    result = _tool("promtool", "test", "rules", "serve_alerts_test.yml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "RakutenHigh5xxRatio" in result.stdout + result.stderr


def _cases() -> list[tuple[set[str], list[dict[str, object]]]]:
    """(input metric names, alert_rule_test entries) of every promtool test case."""
    cases = []
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        for case in load_yaml(path)["tests"]:
            names = {s["series"].split("{", 1)[0] for s in case.get("input_series") or []}
            cases.append((names, case.get("alert_rule_test") or []))
    return cases


# Alerts that read no metric: always firing, so only a firing case (it needs no data).
ALWAYS_FIRING = {"RakutenWatchdog"}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_firing_a_quiet_and_a_no_data_case(rule: dict[str, str]) -> None:
    name, reads = rule["alert"], metric_names(rule["expr"])
    if name in ALWAYS_FIRING:
        assert not reads and rule["labels"]["severity"] == "none", name
        checks = [c for _, case in _cases() for c in case if c["alertname"] == name]
        assert checks and all(c["exp_alerts"] for c in checks), f"{name} must always fire"
        return
    assert reads, f"{name} reads no metric"
    fires = quiet = no_data = False
    for inputs, checks in _cases():
        for check in checks:
            if check["alertname"] != name:
                continue
            has_data = reads <= inputs  # a case without data misses at least one
            fires |= bool(check["exp_alerts"]) and has_data
            quiet |= not check["exp_alerts"] and has_data
            no_data |= not has_data
    assert fires, f"{name}: no case where it fires"
    assert quiet, f"{name}: no case with data where it stays quiet"
    assert no_data, f"{name}: no case without its metrics ({sorted(reads)})"


def test_every_alert_is_labelled_and_explained() -> None:
    """Severity and component route and inhibit (monitoring/alertmanager); the annotations are
    checked in test_alert_annotations.py."""
    components = {"serve", "model", "data", "training", "batch", "monitor", "monitoring"}
    for rule in alert_rules():
        severities = {"none"} if rule["alert"] in ALWAYS_FIRING else {"critical", "warning"}
        assert rule["labels"]["severity"] in severities, rule["alert"]
        assert rule["labels"]["component"] in components, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_scrape_jobs_follow_the_platform_contract() -> None:
    config = load_yaml(PROMETHEUS_YML)
    jobs = scrape_jobs(config)
    assert set(jobs) == {"serve", "monitor", "pushgateway", "alertmanager", "prometheus"}
    assert jobs["serve"]["dns_sd_configs"] == [
        {"names": ["serve"], "type": "A", "port": 8000, "refresh_interval": "30s"}
    ]
    assert jobs["monitor"]["static_configs"] == [{"targets": ["monitor:9108"]}]
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["pushgateway:9091"]}]
    assert jobs["alertmanager"]["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def _pushed_metric_names() -> set[str]:
    """Every series name a batch job pushes (a full retrain's figures included), per the code."""
    gate = {
        "model_name": "rakuten-multimodal",
        "decision": "promote",
        "checks": {
            "test_split": {"challenger_f1": 0.8, "champion_f1": 0.7, "rows": 10},
            "holdout": {"rows": 5},
        },
    }
    run = retrain_run(gate, outcome="promoted", served_version="7")
    run.extra.append(schedule_figure(31 * 86400.0))  # a scheduled DAG's period
    registries = [
        success_registry(run, duration_s=1, finished_at=2),
        failure_registry(finished_at=3),
    ]
    names = {s.name for r in registries for family in r.collect() for s in family.samples}
    return names | {"push_time_seconds", "push_failure_time_seconds"}  # the gateway's, per group


def test_the_pushgateway_scrape_keeps_only_the_batch_jobs_figures() -> None:
    """honor_labels lets a pusher choose its job label: only batch jobs' figures get through.

    Both allow-lists are tied to the code (rakuten_core.job_metrics, rakuten_train.loop_report):
    a job or a figure added there fails here until prometheus.yml lists it; job="monitor" and
    the monitor's figures (what the retrain alerts read) can never come from a push.
    """
    jobs = scrape_jobs(load_yaml(PROMETHEUS_YML))
    assert [name for name, job in jobs.items() if job.get("honor_labels")] == ["pushgateway"]
    for name, job in jobs.items():
        if name != "pushgateway":
            assert "metric_relabel_configs" not in job, name
    by_job, by_name = jobs["pushgateway"]["metric_relabel_configs"]
    assert by_job["action"] == by_name["action"] == "keep"
    assert by_job["source_labels"] == ["job"] and by_name["source_labels"] == ["__name__"]
    allowed_jobs = by_job["regex"].split("|")
    assert all(re.fullmatch(r"[a-z_]+", job) for job in allowed_jobs), by_job["regex"]
    assert set(allowed_jobs) == JOBS | {"pushgateway"}  # the gateway's own metrics: its job
    # Prometheus anchors a relabelling regex at both ends: fullmatch
    kept = re.compile(by_name["regex"])
    pushed = _pushed_metric_names()
    assert {n for n in pushed if not kept.fullmatch(n)} == set()
    never = MONITOR_METRICS | {"ALERTS", "ALERTS_FOR_STATE", "up", "rakuten_model_ready"}
    assert {n for n in never if kept.fullmatch(n)} == set()


@pytest.mark.parametrize("alert", DEFAULT_RETRAIN_ALERTS)
def test_the_alerts_that_retrain_read_only_the_monitor_s_series(alert: str) -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == alert]
    found = selectors(rule["expr"])
    assert found, alert
    for selector in found:
        assert 'job="monitor"' in selector, f"{alert}: {selector} is not the monitor's"
