"""The human-readable drift report: one HTML page, per feature reference vs recent.

Rendered with Jinja2 (autoescaping on) from a :class:`Snapshot`; self-contained (inline CSS,
no script, no external asset) so it can be mailed or archived as one file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from rakuten_core.drift import FEATURES
from rakuten_monitor.snapshot import Snapshot

_env = Environment(
    loader=PackageLoader("rakuten_monitor", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_report(snapshot: Snapshot) -> str:
    """The report's HTML."""
    rows = []
    for spec in FEATURES:
        rows.append(
            {
                "spec": spec,
                "result": snapshot.drift.get(spec.name),
                "values": snapshot.values.get(spec.name, 0),
            }
        )
    return _env.get_template("report.html.j2").render(
        snapshot=snapshot,
        rows=rows,
        taken_at=datetime.fromtimestamp(snapshot.taken_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        drifted=[name for name, r in snapshot.drift.items() if r.drifted],
    )


def write_report(snapshot: Snapshot, out: str | Path) -> Path:
    """Write the report to ``out`` (its folder created) and return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(snapshot), encoding="utf-8")
    return path
