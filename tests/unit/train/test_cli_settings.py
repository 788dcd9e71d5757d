"""``rakuten-train`` takes its paths and infrastructure from the environment; flags win."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rakuten_train.cli import app


def _invoke(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"RAKUTEN_LOG_DIR": str(tmp_path / "logs"), **env})
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_an_invalid_setting_exits_2_before_any_work(command: str, tmp_path: Path) -> None:
    code, output = _invoke([command], {"RAKUTEN_PUSHGATEWAY_TIMEOUT_S": "-1"}, tmp_path)
    assert code == 2
    assert "invalid settings" in output and "pushgateway_timeout_s" in output


@pytest.mark.slow  # imports TensorFlow
def test_paths_come_from_the_environment_unless_given(tmp_path: Path) -> None:
    from_env = tmp_path / "from-env"
    code, output = _invoke(
        ["evaluate", "--bundle", str(tmp_path / "b"), "--reports", str(tmp_path / "r")],
        {"RAKUTEN_PROCESSED_DIR": str(from_env), "RAKUTEN_RAW_DIR": str(from_env)},
        tmp_path,
    )
    assert code == 2 and str(tmp_path / "b") in output  # the flag's bundle, not models/current
    code, output = _invoke(
        ["train", "--params", str(tmp_path / "absent.yaml"), "--no-register", "--no-verbose"],
        {"RAKUTEN_PROCESSED_DIR": str(from_env), "RAKUTEN_BUNDLE_DIR": str(tmp_path / "out")},
        tmp_path,
    )
    assert code == 2 and "cannot train" in output and str(from_env) in output
    assert not (tmp_path / "out").exists()
