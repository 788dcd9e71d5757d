"""The monitor reads a bundle's reference without TensorFlow (its image carries none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from rakuten_monitor import app, cli, metrics, report, service, settings, snapshot, window
from rakuten_monitor.reference import read_reference
app.create_app(settings.MonitorSettings(monitor_model_path=sys.argv[1]))
ref = read_reference(sys.argv[1])
assert ref.drift.features["predicted_class"].total == 2000, ref
heavy = ("tensorflow", "keras", "rakuten_serve", "rakuten_train")
heavy = sorted(m for m in heavy if m in sys.modules)
print("loaded:", heavy)
"""


def test_monitor_imports_and_reads_a_reference_without_tensorflow(bundle_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(bundle_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
