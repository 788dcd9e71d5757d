"""``rakuten-predict`` takes its model and infrastructure from the environment; flags win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rakuten_predict.cli import app

pytestmark = pytest.mark.slow  # loads TensorFlow and a real Keras model


def _run(data: Path, out: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "predict", "--csv", str(data / "x.csv"), "--images", str(data / "images"),
            "--out", str(out), "--no-progress", *extra,
        ],
        env={"RAKUTEN_LOG_DIR": str(out.parent / "logs"), **env},
    )  # fmt: skip
    return result.exit_code, result.output


def test_the_model_comes_from_rakuten_model_path_unless_given(
    predict_bundle_dir: Path, labelled_products: Path, tmp_path: Path
) -> None:
    code, output = _run(
        labelled_products, tmp_path / "a.csv", {"RAKUTEN_MODEL_PATH": str(predict_bundle_dir)}
    )
    assert code == 0, output
    summary = json.loads((tmp_path / "a.summary.json").read_text())
    assert summary["model"]["source"] == str(predict_bundle_dir)

    code, output = _run(  # the flag wins over the variable
        labelled_products,
        tmp_path / "b.csv",
        {"RAKUTEN_MODEL_PATH": str(tmp_path / "elsewhere")},
        "--model",
        str(predict_bundle_dir),
    )
    assert code == 0, output

    code, output = _run(
        labelled_products, tmp_path / "c.csv", {"RAKUTEN_MODEL_PATH": str(tmp_path / "nowhere")}
    )
    assert code == 3 and "nowhere: model bundle directory not found" in output
    assert not (tmp_path / "c.csv").exists()


def test_an_invalid_setting_exits_2_before_any_work(
    labelled_products: Path, tmp_path: Path
) -> None:
    code, output = _run(
        labelled_products, tmp_path / "a.csv", {"RAKUTEN_PUSHGATEWAY_TIMEOUT_S": "0"}
    )
    assert code == 2 and "invalid settings" in output and "pushgateway_timeout_s" in output
    assert not (tmp_path / "a.csv").exists()
