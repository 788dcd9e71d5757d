"""The reference follows the local bundle: re-read when bundle.json changes, refused when bad."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rakuten_core.bundle import METADATA_FILE
from rakuten_core.drift import DriftReference
from rakuten_core.errors import BundleError
from rakuten_monitor.reference import ReferenceSource


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
