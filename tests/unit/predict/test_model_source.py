"""``--model`` resolution: local bundle directories and MLflow registry URIs (real local store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rakuten_core.errors import ModelUnavailableError
from rakuten_predict.cli import app
from rakuten_predict.model_source import is_mlflow_uri, resolve_model
from tests.utils.registry import register_bundle


def test_local_paths_and_uris_are_told_apart(tmp_path: Path) -> None:
    assert is_mlflow_uri("models:/rakuten@champion") and is_mlflow_uri("runs:/abc/bundle")
    assert not is_mlflow_uri("models/current")
    with pytest.raises(ModelUnavailableError, match="not found"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ModelUnavailableError, match="no bundle.json"):
        resolve_model(str(tmp_path))  # a folder, but not a bundle


@pytest.mark.slow
def test_a_registered_bundle_is_resolved_by_alias_and_used_by_the_cli(
    predict_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the local store's artifacts land here
    _, version = register_bundle(predict_bundle_dir, "rakuten-test", alias="champion")

    resolved = resolve_model("models:/rakuten-test@champion", download_dir=tmp_path / "dl")
    expected = json.loads((predict_bundle_dir / "bundle.json").read_text())["model_version"]
    assert json.loads((resolved.path / "bundle.json").read_text())["model_version"] == expected
    assert resolved.registry_version == version

    (tmp_path / "images").mkdir()
    (tmp_path / "x.csv").write_text(
        ",designation,description,productid,imageid\n0,Piscine hors sol,,1,2\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app,
        [
            "predict", "--model", "models:/rakuten-test@champion", "--csv", "x.csv",
            "--images", "images", "--out", "p.csv", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "p.summary.json").read_text())
    assert summary["model"]["source"] == "models:/rakuten-test@champion"
    assert summary["model"]["registry_version"] == version
    assert summary["model"]["path"] is None and summary["throughput"]["model_load_seconds"] > 0
    assert summary["missing_image"][0]["productid"] == 1

    result = CliRunner().invoke(
        app,
        [
            "predict", "--model", "models:/rakuten-test@nope", "--csv", "x.csv",
            "--images", "images", "--out", "p.csv", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 3 and "could not download models:/rakuten-test@nope" in result.output
