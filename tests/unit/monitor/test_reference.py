"""The reference follows the local bundle: re-read when bundle.json changes, refused when bad."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rakuten_core.bundle import METADATA_FILE
from rakuten_core.drift import DriftReference
from rakuten_core.errors import BundleError
from rakuten_monitor.reference import ReferenceSource
from tests.utils.registry import register_bundle


def _touch_later(path: Path, seconds: int) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + seconds, stat.st_mtime + seconds))


def test_a_new_bundle_json_is_picked_up_and_a_broken_one_refused(
    bundle_dir: Path, drift_reference: DriftReference
) -> None:
    source = ReferenceSource(str(bundle_dir))
    first = source.get()
    assert first.model_version == "monitor-test-1"
    assert first.drift == drift_reference
    assert source.get() is first  # unchanged file: not re-read

    meta_file = bundle_dir / METADATA_FILE
    raw = json.loads(meta_file.read_text(encoding="utf-8"))
    raw["model_version"] = "monitor-test-2"
    meta_file.write_text(json.dumps(raw), encoding="utf-8")
    _touch_later(meta_file, 10)
    assert source.get().model_version == "monitor-test-2"

    raw["reference"] = {"prediction_prior": {"10": 1.0}}  # a bundle from before the drift module
    meta_file.write_text(json.dumps(raw), encoding="utf-8")
    _touch_later(meta_file, 20)
    with pytest.raises(BundleError, match="predates the drift module"):
        source.get()

    meta_file.unlink()
    with pytest.raises(BundleError, match="not found"):
        source.get()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _register(folder: Path, name: str) -> str:
    """``folder`` (its bundle.json and a stand-in model file) as a new version of ``name``."""
    (folder / "model.keras").write_bytes(b"not read by the monitor")  # a complete bundle
    return register_bundle(folder, name)[1]


@pytest.mark.slow
def test_an_alias_is_looked_up_again_and_a_promotion_brings_the_new_reference(
    tmp_path: Path, drift_reference: DriftReference, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.artifacts
    from mlflow import MlflowClient

    from rakuten_core.errors import ModelUnavailableError
    from tests.utils.monitor import write_bundle_json

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the local store's artifacts land here
    downloads: list[str] = []
    download = mlflow.artifacts.download_artifacts

    def recorded(*args: Any, **kwargs: Any) -> str:
        downloads.append(str(kwargs.get("artifact_uri")))
        return str(download(*args, **kwargs))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", recorded)
    client = MlflowClient()
    first = _register(write_bundle_json(tmp_path / "v1", drift_reference), "m")
    client.set_registered_model_alias("m", "champion", first)
    clock = _Clock()
    source = ReferenceSource("models:/m@champion", refresh_s=60, clock=clock)
    assert source.get().model_version == "monitor-test-1"

    bundle = write_bundle_json(tmp_path / "v2", drift_reference, model_version="monitor-test-2")
    client.set_registered_model_alias("m", "champion", _register(bundle, "m"))
    clock.now += 59
    assert source.get().model_version == "monitor-test-1"  # not looked up before refresh_s
    clock.now += 2
    assert source.get().model_version == "monitor-test-2"  # the promotion is followed
    # bundle.json alone is downloaded, never the model files beside it
    assert downloads == ["models:/m/1/bundle.json", "models:/m/2/bundle.json"], downloads

    # the registry goes away: the reference loaded before is kept, a new source has none
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'gone' / 'x.db'}")
    clock.now += 61
    assert source.get().model_version == "monitor-test-2"
    with pytest.raises(ModelUnavailableError, match="could not look up models:/m@champion"):
        ReferenceSource("models:/m@champion").get()
