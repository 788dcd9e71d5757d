"""``prepare --feedback``: feedback joins train/val only; the test split never moves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_core.image import decode_image_file
from rakuten_data.cli import app
from rakuten_data.feedback_export import export_feedback, open_database
from rakuten_data.feedback_slice import MANIFEST_FILE, TRAIN_DIR
from rakuten_data.prepare import PreparationError, PrepareOptions, prepare
from rakuten_data.report import DataReport
from tests.utils.feedback_records import Labelled, add_labelled, create_schema, picture

OPTIONS = PrepareOptions(progress=False)
OUTPUTS = (*(f"{name}.parquet" for name in dataset.SPLITS), dataset.REPORT_FILE)
FEEDBACK_CODES = (10, 2280, 50, 1280)
FEEDBACK_ID = 10**11  # above every real and generated Rakuten id


def _bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture
def raw(small_sample: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_sample, tmp_path / "data" / "raw"))


@pytest.fixture
def baseline(raw: Path, tmp_path: Path) -> Path:
    out = tmp_path / "baseline"
    prepare(raw, out, OPTIONS)
    return out


@pytest.fixture
def feedback(baseline: Path, tmp_path: Path) -> Path:
    """A slice of 16 labelled products (4 classes x 4) plus one copy of a test-split product."""
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    create_schema(url)
    store = tmp_path / "store"
    store.mkdir()
    rows = [
        Labelled(
            f"f{i}",
            FEEDBACK_CODES[i % 4],
            minutes=i,
            productid=FEEDBACK_ID + i,
            imageid=FEEDBACK_ID + i,
            designation=f"Retour client {i}",
            image=picture(i),
        )
        for i in range(16)
    ]
    test_row = pd.read_parquet(baseline / "test.parquet").iloc[0]
    rows.append(
        Labelled(
            "leak",
            int(test_row["prdtypecode"]),
            minutes=1.5,
            productid=int(test_row["productid"]),
            designation=str(test_row["designation"]),
            description=str(test_row["description"]),
        )
    )
    add_labelled(url, rows, store)
    out = tmp_path / "data" / "feedback"
    engine = open_database(url)
    try:
        export_feedback(engine, images_dir=store, out=out, holdout_share=0.2)
    finally:
        engine.dispose()
    return out


def test_without_feedback_or_with_an_empty_slice_the_output_is_unchanged(
    raw: Path, baseline: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-slice"
    result = CliRunner().invoke(app, ["verify-feedback", "--feedback", str(empty)])
    assert result.exit_code == 0, result.output
    (tmp_path / "absent").mkdir()
    for name, slice_dir in (("empty", empty), ("absent", tmp_path / "absent" / "feedback")):
        out = tmp_path / name
        report = prepare(raw, out, OPTIONS, slice_dir)
        assert report.feedback is None
        assert _bytes(out) == _bytes(baseline), name
    assert "feedback" not in json.loads((baseline / dataset.REPORT_FILE).read_text())


def test_feedback_joins_train_and_val_and_the_test_split_is_byte_identical(
    raw: Path, baseline: Path, feedback: Path, tmp_path: Path
) -> None:
    out = tmp_path / "with-feedback"
    result = CliRunner().invoke(
        app,
        [
            "prepare",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--feedback",
            str(feedback),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "9 rows to train, 4 to val, 1 dropped" in result.output
    assert (out / "test.parquet").read_bytes() == (baseline / "test.parquet").read_bytes()

    before = {n: pd.read_parquet(baseline / f"{n}.parquet") for n in ("train", "val")}
    after = {n: pd.read_parquet(out / f"{n}.parquet") for n in ("train", "val")}
    added = {n: after[n][after[n]["productid"] >= FEEDBACK_ID] for n in after}
    # 17 feedback rows: 3 most recent to the holdout, the test-split copy dropped -> 13
    assert len(added["train"]) + len(added["val"]) == 13
    assert len(added["val"]) == 4 and set(added["val"]["prdtypecode"]) <= set(FEEDBACK_CODES)
    for name in after:  # the raw rows are untouched, in their order
        raw_rows = after[name][after[name]["productid"] < FEEDBACK_ID].reset_index(drop=True)
        pd.testing.assert_frame_equal(raw_rows, before[name])
    holdout_ids = {FEEDBACK_ID + 13, FEEDBACK_ID + 14, FEEDBACK_ID + 15}
    assert holdout_ids.isdisjoint(set(pd.concat(added.values())["productid"]))
    for path in pd.concat(added.values())["image_path"]:
        assert path.startswith("../feedback/train/images/image_train/")
        assert decode_image_file(raw / path, size=16).shape == (16, 16, 3)

    report = DataReport.model_validate_json((out / dataset.REPORT_FILE).read_text())
    baseline_report = DataReport.model_validate_json((baseline / dataset.REPORT_FILE).read_text())
    assert report.feedback is not None and report.feedback.dropped_in_test == 1
    assert (report.feedback.train, report.feedback.val) == (9, 4)
    assert report.fingerprint != baseline_report.fingerprint
    assert report.splits["test"] == baseline_report.splits["test"]
    assert report.rows == baseline_report.rows + 13
    assert "feedback_in_test_split" in {i.code for i in report.issues}


def test_a_damaged_slice_stops_preparation_like_damaged_raw_data(
    raw: Path, feedback: Path, tmp_path: Path
) -> None:
    labels = feedback / TRAIN_DIR / dataset.Y_TRAIN_FILE
    lines = labels.read_text().splitlines()
    lines[1] = "0,999"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(PreparationError) as caught:
        prepare(raw, tmp_path / "out", OPTIONS, feedback)
    assert "feedback_unknown_labels" in {i.code for i in caught.value.report.errors}
    result = CliRunner().invoke(app, ["verify-feedback", "--feedback", str(feedback)])
    assert result.exit_code == 2 and "changed: train/Y_train_CVw08PX.csv" in result.output


def test_verify_feedback_refuses_files_the_manifest_does_not_list(feedback: Path) -> None:
    result = CliRunner().invoke(app, ["verify-feedback", "--feedback", str(feedback)])
    assert result.exit_code == 0 and "is intact: 14 train rows, 3 holdout rows" in result.output
    (feedback / TRAIN_DIR / "images" / "image_train" / "extra.jpg").write_bytes(picture(40))
    result = CliRunner().invoke(app, ["verify-feedback", "--feedback", str(feedback)])
    assert result.exit_code == 2 and "not in the manifest" in result.output
    (feedback / MANIFEST_FILE).unlink()
    result = CliRunner().invoke(app, ["verify-feedback", "--feedback", str(feedback)])
    assert result.exit_code == 2 and "no manifest.json" in result.output
