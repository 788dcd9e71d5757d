"""MonitorSettings: the contract's names and defaults, and refusals of nonsense values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rakuten_monitor.settings import MonitorSettings


def test_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "MONITOR_PORT", "MONITOR_WINDOW", "MONITOR_MODEL_PATH"):
        monkeypatch.delenv(f"RAKUTEN_{name}", raising=False)
    s = MonitorSettings(_env_file=None)  # type: ignore[call-arg]
    assert (s.monitor_host, s.monitor_port, s.monitor_interval_s) == ("127.0.0.1", 9108, 30.0)
    assert (s.monitor_window, s.monitor_min_predictions, s.monitor_min_feedback) == (500, 100, 50)
    assert s.monitor_model_path == "models/current"
    assert s.database_url == "sqlite:///data/serve.db"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_MONITOR_WINDOW", "200")
    monkeypatch.setenv("RAKUTEN_MONITOR_INTERVAL_S", "2.5")
    monkeypatch.setenv("RAKUTEN_MONITOR_MODEL_PATH", "models:/rakuten-multimodal@champion")
    s = MonitorSettings(_env_file=None)  # type: ignore[call-arg]
    assert (s.monitor_window, s.monitor_interval_s) == (200, 2.5)
    assert s.monitor_model_path == "models:/rakuten-multimodal@champion"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MONITOR_WINDOW", "0"), ("MONITOR_PORT", "70000"), ("MONITOR_INTERVAL_S", "-1")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"RAKUTEN_{name}", value)
    with pytest.raises(ValidationError):
        MonitorSettings(_env_file=None)  # type: ignore[call-arg]
