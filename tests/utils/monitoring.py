"""Reading ``monitoring/``: Prometheus rules, Grafana dashboards and the queries they hold.

Shared by the structural tests (``tests/unit/monitoring``) and the real-Prometheus test
(``tests/integration/test_prometheus_queries.py``), so both check the same list of queries.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.utils.paths import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_YML = MONITORING / "prometheus" / "prometheus.yml"
RULES_DIR = MONITORING / "prometheus" / "rules"
RULE_TESTS_DIR = MONITORING / "prometheus" / "tests"
ALERTMANAGER_DIR = MONITORING / "alertmanager"
# the quick start's configuration, and its twin with e-mail and a chat (docs/monitoring.md)
ALERTMANAGER_YML = ALERTMANAGER_DIR / "alertmanager.yml"
ALERTMANAGER_PEOPLE_YML = ALERTMANAGER_DIR / "alertmanager.people.yml"
RUNBOOKS_MD = REPO_ROOT / "docs" / "runbooks.md"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
DATASOURCES_DIR = MONITORING / "grafana" / "provisioning" / "datasources"
PROVIDERS_DIR = MONITORING / "grafana" / "provisioning" / "dashboards"

# Grafana's interval variable, replaced by a concrete window to run a panel's query directly.
RATE_INTERVAL = "$__rate_interval"
# The dashboards' replica variable and its "All" value (a regex matching every instance).
INSTANCE_VARIABLE = "$instance"
ALL_INSTANCES = ".*"
# What rakuten-monitor exports (the shared contract, docs/monitoring.md).
MONITOR_METRICS = {
    "rakuten_drift_score",
    "rakuten_drift_threshold",
    "rakuten_drift_window_predictions",
    "rakuten_live_accuracy",
    "rakuten_live_weighted_f1",
    "rakuten_live_feedback_window",
    "rakuten_live_class_recall",
    "rakuten_live_class_feedback_window",
    "rakuten_monitor_last_success_timestamp_seconds",
    "rakuten_monitor_runs_total",
    "rakuten_monitor_notifications_total",
    "rakuten_shadow_window_predictions",
    "rakuten_shadow_feedback_window",
    "rakuten_shadow_agreement",
    "rakuten_shadow_live_accuracy",
}

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard panel or an alert, with where it comes from."""

    source: str  # "dashboard rakuten-api" or "alert"
    name: str  # the panel title or the alert name
    expr: str

    @property
    def label(self) -> str:
        return f"{self.source}: {self.name}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(load_yaml(path)["groups"])
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> dict[str, str]:
    """Recorded series name -> its expression."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(RULES_DIR.glob("*.yml")))
    return dict(_recording_rules(stamp))


@functools.lru_cache(maxsize=4)
def _recording_rules(stamp: tuple[tuple[str, int], ...]) -> tuple[tuple[str, str], ...]:
    """Parsed once per version of the rule files: ``metric_names`` asks for every selector."""
    del stamp  # the cache key: a rule file edited since is parsed again
    return tuple(
        (rule["record"], rule["expr"])
        for group in rule_groups()
        for rule in group["rules"]
        if "record" in rule
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """Dashboard file name -> parsed JSON."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p.get("type") != "row"]


def panel_queries() -> list[Query]:
    """Every query of the dashboards: each panel's targets and each annotation's expression."""
    found = [
        Query(
            f"dashboard {dashboard['uid']}", f"{panel['title']} [{target['refId']}]", target["expr"]
        )
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    found += [
        Query(
            f"dashboard {dashboard['uid']}", f"annotation {annotation['name']}", annotation["expr"]
        )
        for dashboard in dashboards().values()
        for annotation in dashboard.get("annotations", {}).get("list", [])
        if "expr" in annotation
    ]
    return found


def runnable(expr: str, rate_window: str) -> str:
    """A dashboard query as Grafana sends it with every replica selected: ``$__rate_interval``
    becomes ``rate_window`` and ``$instance`` the variable's *All* value."""
    return expr.replace(RATE_INTERVAL, rate_window).replace(INSTANCE_VARIABLE, ALL_INSTANCES)


def alert_queries() -> list[Query]:
    return [Query("alert", rule["alert"], rule["expr"]) for rule in alert_rules()]


def selectors(expr: str) -> list[str]:
    """The vector selectors of an expression (``name{matchers}``), without ranges or offsets.

    A small scanner rather than a PromQL parser: it skips strings, grouping clauses
    (``by (...)``, ``on (...)``), function names (a name followed by ``(``), keywords, numbers
    and durations, which is all the expressions of this repository use.
    """
    text = re.sub(r"\[[^\]]*\]", "", expr)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found: list[str] = []
    i = 0
    while i < len(text):
        match = _NAME.match(text, i)
        if match is None or (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.")):
            if text[i] == "{":
                end = text.index("}", i)
                found.append(text[i : end + 1])  # a selector without a name
                i = end + 1
                continue
            i += 1
            continue
        name, end = match.group(), match.end()
        rest = text[end:].lstrip()
        if rest.startswith("("):
            i = end  # a function
            continue
        if name.lower() in _KEYWORDS:
            i = end
            continue
        if rest.startswith("{"):
            close = text.index("}", end)
            found.append(name + text[text.index("{", end) : close + 1])
            i = close + 1
        else:
            found.append(name)
            i = end
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads, recording rules expanded to what they read."""
    recorded = recording_rules()
    names: set[str] = set()
    for selector in selectors(expr):
        name = selector.split("{", 1)[0]
        if not name:
            continue
        if name in recorded:
            names |= metric_names(recorded[name])
        else:
            names.add(name)
    return names


def scrape_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}
