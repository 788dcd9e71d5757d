"""Every alert of every rule file tells a person what it means, what to do and where to look.

``summary`` and ``description`` say what fired; ``runbook_url`` points at a section of
docs/runbooks.md that exists (what to check, what to do); ``dashboard_url`` at a provisioned
Grafana dashboard (``/d/<uid>``). A rule file added next to the others is covered as it is.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.utils.monitoring import RUNBOOKS_MD, alert_rules, dashboards

REQUIRED = ("summary", "description", "runbook_url", "dashboard_url")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    """Anchor -> the section's text (up to the next heading of the same or a higher level)."""
    text = RUNBOOKS_MD.read_text(encoding="utf-8")
    headings = list(re.finditer(r"(?m)^(#{1,6}) (.+)$", text))
    sections = {}
    for i, heading in enumerate(headings):
        level = len(heading.group(1))
        end = next((h.start() for h in headings[i + 1 :] if len(h.group(1)) <= level), len(text))
        sections[_anchor(heading.group(2))] = text[heading.end() : end]
    return sections


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_the_four_annotations(rule: dict[str, Any]) -> None:
    annotations = rule.get("annotations") or {}
    for key in REQUIRED:
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']} has no {key}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_the_runbook_url_names_a_section_of_the_runbooks(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    found = re.fullmatch(r"docs/runbooks\.md#([a-z0-9_-]+)", url)
    assert found, f"{rule['alert']}: {url} is not docs/runbooks.md#<section>"
    sections = _runbook_sections()
    assert found.group(1) in sections, f"{rule['alert']}: no section #{found.group(1)}"
    body = sections[found.group(1)]
    # what to check and what to do, not a title alone
    assert re.search(r"(?i)\bcheck\b", body) and re.search(r"(?i)\bdo\b", body), rule["alert"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_the_dashboard_url_names_a_provisioned_dashboard(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["dashboard_url"]
    found = re.fullmatch(r"/d/([A-Za-z0-9_-]+)(\?.*)?", url)
    assert found, f"{rule['alert']}: {url} is not /d/<uid>"
    uids = {d["uid"] for d in dashboards().values()}
    assert found.group(1) in uids, f"{rule['alert']}: no dashboard {found.group(1)}"


def test_each_alert_has_its_own_section() -> None:
    """One section per alert, named after it: a reader searching the name finds it."""
    for rule in alert_rules():
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
