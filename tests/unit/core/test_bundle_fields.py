"""bundle.json's typed sections read the layout training has always written, and write it back.

``data/bundle.json`` is ``models/current/bundle.json`` of 2026-12-06 (written when ``text``,
``metrics`` and ``reference`` were plain dictionaries), trimmed to three categories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rakuten_core.bundle import METADATA_FILE, read_metadata, write_bundle
from rakuten_core.bundle_fields import HeldOutMetrics
from rakuten_core.drift import DriftReference, require_reference
from rakuten_core.errors import BundleError

SAVED = Path(__file__).parent / "data" / METADATA_FILE


def _bundle_json(folder: Path, **changes: Any) -> Path:
    raw = json.loads(SAVED.read_text(encoding="utf-8"))
    (folder / METADATA_FILE).write_text(json.dumps(raw | changes), encoding="utf-8")
    return folder


def test_a_saved_bundle_json_reads_typed_and_is_written_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    shutil.copy(SAVED, tmp_path / METADATA_FILE)
    meta = read_metadata(tmp_path)
    assert meta.text.char_ngrams == (2, 5) and meta.text.sequence_length == 64
    assert isinstance(meta.metrics, HeldOutMetrics)
    assert meta.metrics.weighted_f1 == 0.874588 and meta.metrics.n == 199
    assert set(meta.metrics.modalities) == {"fused", "text_only", "image_only"}
    pool = meta.metrics.modalities["fused"].per_class[-1]
    assert (pool.code, pool.name, pool.support) == (2583, "Poolside items", 23)
    assert isinstance(meta.reference, DriftReference)
    assert require_reference(meta.reference).features["predicted_class"].labels == [
        "10",
        "40",
        "2583",
    ]
    assert meta.params["text"] == json.loads(SAVED.read_text())["params"]["text"]

    written = write_bundle(tmp_path / "again", meta, lambda staging: None)
    assert (written / METADATA_FILE).read_bytes() == SAVED.read_bytes()


@pytest.mark.parametrize(
    "reference",
    [
        {},  # no reference
        {"n": 199, "prediction_prior": {"10": 1.0}, "empty_text_rate": 0.0},  # before drift.py
        {"version": 2, "n": 1, "features": {}},  # a format this code does not know
    ],
)
def test_a_bundle_without_a_usable_reference_loads_and_only_the_monitor_refuses_it(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    meta = read_metadata(_bundle_json(tmp_path, reference=reference))
    assert meta.reference is None
    assert meta.model_dump(mode="json")["reference"] == {}  # written back as no reference
    with pytest.raises(BundleError, match="no drift reference.*predates the drift module"):
        require_reference(meta.reference)


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("metrics", {"weighted_f1": 0.5}),  # the summary alone
        ("text", {"vectorizer": "tf_idf"}),
        ("reference", {"version": 1, "n": 1, "features": {"x": {"kind": "numeric"}}}),
    ],
)
def test_a_section_off_the_layout_is_refused_on_load(
    tmp_path: Path, section: str, value: dict[str, Any]
) -> None:
    with pytest.raises(BundleError, match=f"(?s)invalid.*\n{section}\\."):
        read_metadata(_bundle_json(tmp_path, **{section: value}))
