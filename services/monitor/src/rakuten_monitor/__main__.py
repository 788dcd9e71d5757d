"""``python -m rakuten_monitor``: the ``rakuten-monitor`` CLI."""

from rakuten_monitor.cli import app

app(prog_name="rakuten-monitor")
