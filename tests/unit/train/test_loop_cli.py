"""The loop commands refuse bad params with exit 2 before touching MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rakuten_train.cli import app


@pytest.mark.parametrize(
    ("content", "args"),
    [
        ("train:\n  epochs: -3\n", ["promote", "--version", "2", "--expect-champion", "1"]),
        ("train: [unclosed\n", ["register"]),
        ("train:\n  epochs: zero\n", ["gate", "--version", "2"]),
    ],
)
def test_invalid_params_exit_2_with_the_file_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, args: list[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(content, encoding="utf-8")
    monkeypatch.setenv("RAKUTEN_LOG_DIR", str(tmp_path / "logs"))
    # an unreachable registry: reaching it would be a failure of this check, not a pass
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, [*args, "--params", str(params)])
    assert result.exit_code == 2, result.output
    assert f"invalid params in {params}" in result.output
