"""monitoring/alertmanager: both configurations valid, the same routes, where each alert goes,
and what mutes what.

``amtool config routes test`` answers, for every alert of every rule file, which receivers get
it: the expected table below must name each alert (a new alert fails here until it is routed on
purpose). amtool cannot test inhibitions, so :func:`_inhibited` models Alertmanager's rule
(source and target matchers, ``equal`` labels, a missing label being the empty string) over a
representative firing alert of each name; the same properties are checked against a real
Alertmanager in tests/integration/test_alertmanager_receivers.py.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rakuten_monitor.webhook_settings import DEFAULT_RETRAIN_ALERTS
from tests.utils.compose import COMPOSE_FILE
from tests.utils.monitoring import (
    ALERTMANAGER_PEOPLE_YML,
    ALERTMANAGER_YML,
    alert_rules,
    load_yaml,
)

RETRAIN = "retrain-webhook,people"
# Every alert of monitoring/prometheus/rules and the receivers that get it, in route order.
RECEIVERS = {
    "RakutenApiDown": "oncall",
    "RakutenHigh5xxRatio": "oncall",
    "RakutenModelNotReady": "oncall",
    "RakutenPredictionRecordsDropped": "oncall",
    "RakutenAlertNotificationsFailing": "oncall",
    "RakutenPredictErrorBudgetFastBurn": "oncall",
    "RakutenPredictLatencyBudgetFastBurn": "oncall",
    "RakutenPredictLatencyP95High": "people",
    "RakutenRateLimitStorm": "people",
    "RakutenAuthFailureSpike": "people",
    "RakutenPredictionRecordsPending": "people",
    "RakutenMonitorDown": "people",
    "RakutenMonitorStale": "people",
    "RakutenTrainingStale": "people",
    "RakutenBatchJobFailed": "people",
    "RakutenTargetDown": "people",
    "RakutenPredictErrorBudgetSlowBurn": "people",
    "RakutenPredictLatencyBudgetSlowBurn": "people",
    "RakutenDriftAboveThreshold": RETRAIN,
    "RakutenLiveAccuracyLow": RETRAIN,
    "RakutenWatchdog": "deadmansswitch",
}
# One firing alert of each name with the labels its expression gives it (the rule's own labels
# are added from the rule files). ModelNotReady twice: on the replica that is down, and another.
FIRING: list[tuple[str, str, dict[str, str]]] = [
    ("RakutenApiDown", "api down a", {"job": "serve", "instance": "a:8000"}),
    ("RakutenHigh5xxRatio", "5xx", {"job": "serve"}),
    ("RakutenPredictLatencyP95High", "latency", {"job": "serve", "route": "/predict"}),
    ("RakutenRateLimitStorm", "429", {"job": "serve"}),
    ("RakutenAuthFailureSpike", "auth", {"job": "serve"}),
    ("RakutenModelNotReady", "no model a", {"job": "serve", "instance": "a:8000"}),
    ("RakutenModelNotReady", "no model b", {"job": "serve", "instance": "b:8000"}),
    ("RakutenPredictionRecordsPending", "pending", {"job": "serve"}),
    ("RakutenPredictionRecordsDropped", "dropped", {"job": "serve"}),
    ("RakutenDriftAboveThreshold", "drift", {"job": "monitor", "instance": "monitor:9108",
                                             "feature": "no_image"}),
    ("RakutenLiveAccuracyLow", "accuracy", {"job": "monitor", "instance": "monitor:9108"}),
    ("RakutenMonitorDown", "monitor down", {"job": "monitor", "instance": "monitor:9108"}),
    ("RakutenMonitorStale", "monitor stale", {"job": "monitor", "instance": "monitor:9108"}),
    ("RakutenTrainingStale", "training stale", {"job": "rakuten_retrain"}),
    ("RakutenBatchJobFailed", "job failed", {"job": "rakuten_retrain"}),
    ("RakutenWatchdog", "watchdog", {}),
    ("RakutenAlertNotificationsFailing", "notifications", {"integration": "email"}),
    ("RakutenTargetDown", "target down", {"job": "pushgateway", "instance": "pushgateway:9091"}),
    ("RakutenPredictErrorBudgetFastBurn", "slo 5xx fast", {"job": "serve"}),
    ("RakutenPredictErrorBudgetSlowBurn", "slo 5xx slow", {"job": "serve"}),
    ("RakutenPredictLatencyBudgetFastBurn", "slo latency fast", {"job": "serve"}),
    ("RakutenPredictLatencyBudgetSlowBurn", "slo latency slow", {"job": "serve"}),
]  # fmt: skip
# (source, target) for every pair where the source mutes the target while both fire.
INHIBITED = {
    ("api down a", "no model a"),  # its own model only: not b's, not the 5xx, not lost records
    ("5xx", "latency"),
    ("5xx", "429"),
    ("dropped", "pending"),
    ("monitor down", "drift"),
    ("monitor down", "accuracy"),
    ("monitor down", "monitor stale"),
    ("slo 5xx fast", "latency"),
    ("slo 5xx fast", "429"),
    ("slo 5xx fast", "slo 5xx slow"),
    ("slo 5xx fast", "slo latency slow"),
    ("slo latency fast", "latency"),
    ("slo latency fast", "429"),
    ("slo latency fast", "slo 5xx slow"),
    ("slo latency fast", "slo latency slow"),
    ("5xx", "slo 5xx slow"),
    ("5xx", "slo latency slow"),
}
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("amtool")
    assert path, "amtool is missing: run `make system-deps` (scripts/system-deps.sh)"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)


def _checkable(path: Path, tmp_path: Path) -> Path:
    """``path`` as the test machines' amtool (0.25) reads it: webhook ``url_file`` (0.26+, the
    people config's heartbeat) becomes a ``url``; the templates stay where they are."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"url_file: \S+", "url: https://heartbeat.invalid/ping", text)
    text = text.replace("  - templates/*.tmpl", f"  - {path.parent}/templates/*.tmpl")
    out = tmp_path / path.name
    out.write_text(text, encoding="utf-8")
    return out


@pytest.fixture(
    scope="module",
    params=[ALERTMANAGER_YML, ALERTMANAGER_PEOPLE_YML],
    ids=["quick-start", "people"],
)
def config_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = request.param
    return _checkable(path, tmp_path_factory.mktemp(path.stem))


def test_amtool_accepts_both_configurations(config_file: Path) -> None:
    check = _amtool("check-config", str(config_file))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 inhibit rules" in check.stdout and "4 receivers" in check.stdout
    assert "1 templates" in check.stdout


def test_the_people_configuration_is_the_quick_start_plus_e_mail_chat_and_heartbeat() -> None:
    """Routes, groupings, inhibitions and templates are one design: only integrations differ."""
    quick, people = load_yaml(ALERTMANAGER_YML), load_yaml(ALERTMANAGER_PEOPLE_YML)
    for key in ("global", "templates", "route", "inhibit_rules"):
        assert people[key] == quick[key], key
    added = {"people": ["email_configs", "slack"], "oncall": ["email_configs", "slack"],
             "deadmansswitch": ["webhook_configs"], "retrain-webhook": []}  # fmt: skip
    people_receivers = {r["name"]: r for r in people["receivers"]}
    assert set(people_receivers) == {r["name"] for r in quick["receivers"]} == set(added)
    for receiver in quick["receivers"]:
        mine = copy.deepcopy(people_receivers[receiver["name"]])
        extra = mine.get("slack_configs", [])[len(receiver.get("slack_configs", [])) :]
        if "slack" in added[receiver["name"]]:
            (chat,) = extra
            assert chat["api_url_file"] == "/etc/alertmanager/receivers/chat_webhook_url"
            assert "http_config" not in chat  # the monitor's token never goes to the chat
            mine["slack_configs"] = mine["slack_configs"][: len(extra) * -1]
        if "email_configs" in added[receiver["name"]]:
            assert mine.pop("email_configs")[0]["to"]
        if receiver["name"] == "deadmansswitch":
            (heartbeat,) = mine.pop("webhook_configs")
            assert heartbeat["url_file"] == "/etc/alertmanager/receivers/heartbeat_url"
        assert mine == receiver, receiver["name"]


def _alert_labels(rule: dict[str, Any]) -> list[str]:
    return [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]


def test_every_alert_has_an_expected_receiver() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names - set(RECEIVERS) == set(), "route the new alert on purpose: add it to RECEIVERS"
    assert set(RECEIVERS) - names == set(), "RECEIVERS names an alert no rule file has"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_reaches_its_receivers(rule: dict[str, Any], config_file: Path) -> None:
    found = _amtool(
        "config", "routes", "test", f"--config.file={config_file}", *_alert_labels(rule)
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == RECEIVERS.get(rule["alert"]), rule["alert"]


def test_an_unlabelled_alert_still_reaches_people(config_file: Path) -> None:
    found = _amtool("config", "routes", "test", f"--config.file={config_file}", "alertname=New")
    assert found.stdout.strip() == "people"


def test_the_retraining_route_is_its_own_and_lets_people_see_its_alerts() -> None:
    route = load_yaml(ALERTMANAGER_YML)["route"]
    (retrain,) = [r for r in route["routes"] if r.get("receiver") == "retrain-webhook"]
    (matcher,) = retrain["matchers"]
    names = re.fullmatch(r'alertname=~"(.+)"', matcher)
    assert names and set(names.group(1).split("|")) == set(DEFAULT_RETRAIN_ALERTS)
    compose = COMPOSE_FILE.read_text(encoding="utf-8")
    assert f"RETRAIN_ALERTS:-{','.join(DEFAULT_RETRAIN_ALERTS)}}}" in compose
    assert retrain["continue"] is True and retrain["group_by"] == ["alertname"]
    assert retrain["repeat_interval"] == "24h"  # the webhook's 6 h cooldown bounds the rest
    (watchdog,) = [r for r in route["routes"] if r.get("receiver") == "deadmansswitch"]
    assert watchdog["matchers"] == ['alertname="RakutenWatchdog"'] and "continue" not in watchdog
    assert watchdog["repeat_interval"] == "5m"


def test_secrets_and_urls_come_from_files() -> None:
    for path in (ALERTMANAGER_YML, ALERTMANAGER_PEOPLE_YML):
        config = load_yaml(path)
        assert config["global"]["smtp_auth_password_file"] == (
            "/etc/alertmanager/secrets/smtp_password"
        )
        assert "smtp_auth_password" not in config["global"]
        for receiver in config["receivers"]:
            for kind in ("slack_configs", "webhook_configs"):
                for integration in receiver.get(kind, []):
                    auth = (integration.get("http_config") or {}).get("authorization")
                    url = integration.get("api_url") or integration.get("url")
                    if url is None:  # a deployment's URL: a file compose mounts
                        assert (
                            integration.get("api_url_file") or integration["url_file"]
                        ).startswith("/etc/alertmanager/receivers/")
                        continue
                    assert re.fullmatch(r"http://(monitor:9108|alert-webhook:8080)/[a-z/]+", url)
                    assert auth["type"] == "Bearer" and "credentials" not in auth
                    assert auth["credentials_file"].startswith("/etc/alertmanager/generated/")


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    found = _MATCHER.match(matcher)
    assert found, f"unparsed matcher {matcher!r}"
    name, op, value = found.groups()
    actual = labels.get(name, "")
    if op in ("=", "!="):
        return (actual == value) == (op == "=")
    return (re.fullmatch(value, actual) is not None) == (op == "=~")


def _firing() -> dict[str, dict[str, str]]:
    """Display name -> the complete labels of the firing alert."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    return {
        key: {"alertname": name, **rules[name]["labels"], **labels}
        for name, key, labels in FIRING
        if name in rules
    }


def _inhibited(
    rules: list[dict[str, Any]], firing: dict[str, dict[str, str]]
) -> set[tuple[str, str]]:
    pairs = set()
    for rule in rules:
        for source, s_labels in firing.items():
            if not all(_matches(m, s_labels) for m in rule["source_matchers"]):
                continue
            for target, t_labels in firing.items():
                if source == target:
                    continue
                if not all(_matches(m, t_labels) for m in rule["target_matchers"]):
                    continue
                if all(s_labels.get(k, "") == t_labels.get(k, "") for k in rule.get("equal", [])):
                    pairs.add((source, target))
    return pairs


def test_every_alert_has_a_representative_firing_alert() -> None:
    names = {name for name, _, _ in FIRING}
    assert {rule["alert"] for rule in alert_rules()} - names == set()


def test_the_inhibitions_mute_exactly_the_expected_pairs() -> None:
    rules = load_yaml(ALERTMANAGER_YML)["inhibit_rules"]
    firing = _firing()
    for rule in rules:  # the model needs no two-sided match (Alertmanager's special case)
        for labels in firing.values():
            both = all(
                _matches(m, labels) for m in rule["source_matchers"] + rule["target_matchers"]
            )
            assert not both, (rule, labels)
    expected = {(s, t) for s, t in INHIBITED if s in firing and t in firing}
    assert _inhibited(rules, firing) == expected


def test_no_inhibition_can_hide_data_loss_another_replica_or_an_attack() -> None:
    rules = load_yaml(ALERTMANAGER_YML)["inhibit_rules"]
    firing = _firing()
    muted = _inhibited(rules, firing)
    assert not [s for s, t in muted if t == "dropped"], "lost records must always be sent"
    assert not [s for s, t in muted if t == "5xx"], "nothing mutes the 5xx of the replicas"
    # one replica down mutes its own missing model, nothing the other replicas show
    assert {t for s, t in muted if s == "api down a"} == {"no model a"}
    assert not [s for s, t in muted if t == "auth"], "an outage must not hide password guessing"
    # no serve target at all (RakutenApiDown from absent(): no instance label) is about the
    # whole job: it mutes the job's serve warnings, still never lost records, 5xx or auth
    outage = {**firing, "no serve target": dict(firing["api down a"])}
    del outage["no serve target"]["instance"]
    from_outage = {t for s, t in _inhibited(rules, outage) if s == "no serve target"}
    assert from_outage.isdisjoint({"dropped", "pending", "5xx", "auth", "no model b"})
