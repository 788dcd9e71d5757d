"""rules/slo.yml holds the SRE workbook's multi-window, multi-burn-rate alerts, as written there:
the pairs of windows, the burn rates, page -> critical and ticket -> warning, a traffic floor on
every long window, and error budgets recorded once. promtool runs its cases
(monitoring/prometheus/tests/slo_test.yml) in test_prometheus_config.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.utils.monitoring import RULES_DIR, load_yaml, recording_rules, selectors

# (long window, short window, burn rate): the workbook's table for a 30-day objective
PAGE = {("1h", "5m", 14.4), ("6h", "30m", 6.0)}
TICKET = {("1d", "2h", 3.0), ("3d", "6h", 1.0)}
BUDGETS = {"availability": 0.005, "latency": 0.01}  # 99.5% and 99% over 30 days
CONDITION = re.compile(
    r"job:rakuten_slo_predict_(\w+):ratio_rate(\w+)\s*>\s*on \(job\) \(([\d.]+) \* "
    r"job:rakuten_slo_predict_(\w+):error_budget\)"
)
FLOOR = re.compile(r"job:rakuten_slo_predict_requests:rate(\w+) >= 1 / 60")


def _slo() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(RULES_DIR / "slo.yml")
    return document


def _alerts() -> list[dict[str, Any]]:
    return [r for g in _slo()["groups"] for r in g["rules"] if "alert" in r]


def test_the_budgets_are_recorded_once() -> None:
    rules = [r for g in _slo()["groups"] for r in g["rules"] if "record" in r]
    budgets = {r["record"]: r for r in rules if r["record"].endswith(":error_budget")}
    assert set(budgets) == {f"job:rakuten_slo_predict_{k}:error_budget" for k in BUDGETS}
    for kind, budget in BUDGETS.items():
        rule = budgets[f"job:rakuten_slo_predict_{kind}:error_budget"]
        assert rule["expr"] == f"vector({budget})" and rule["labels"] == {"job": "serve"}


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_each_alert_follows_the_workbook(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    found = CONDITION.findall(expr)
    ratios = {ratio for ratio, _, _, _ in found}
    kinds = {kind for _, _, _, kind in found}
    assert len(ratios) == 1 and len(kinds) == 1, expr  # one SLI against its own budget
    (ratio,), (kind,) = ratios, kinds
    assert {"errors": "availability", "slow": "latency"}[ratio] == kind
    assert rule["labels"]["slo"] == f"predict-{kind}"
    pairs = {(w, float(f)) for _, w, f, _ in found}
    page = rule["labels"]["severity"] == "critical"
    expected = PAGE if page else TICKET
    assert pairs == {(w, f) for long, short, f in expected for w in (long, short)}, expr
    # a condition holds only when both windows of a pair burn: one "or" between the pairs
    assert len(re.findall(r"\bor\b", expr)) == 1 and len(re.findall(r"\band\b", expr)) == 4
    assert set(FLOOR.findall(expr)) == {long for long, _, _ in expected}
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert "for" not in rule  # the short window already confirms the burn is going on


def test_every_series_the_alerts_read_is_recorded() -> None:
    recorded = recording_rules()
    for rule in _alerts():
        for selector in selectors(rule["expr"]):
            assert selector.split("{", 1)[0] in recorded, (rule["alert"], selector)


def test_both_slos_have_a_page_and_a_ticket() -> None:
    seen = {(r["labels"]["slo"], r["labels"]["severity"]) for r in _alerts()}
    assert seen == {
        (slo, severity)
        for slo in ("predict-availability", "predict-latency")
        for severity in ("critical", "warning")
    }
