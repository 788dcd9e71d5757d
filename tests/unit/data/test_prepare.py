"""``prepare`` on the real 201-row sample and on generated samples."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_core.categories import CODES, CategoryIndex
from rakuten_core.image import decode_image_file
from rakuten_core.text import product_text
from rakuten_data.cli import app
from rakuten_data.prepare import PrepareOptions, prepare
from rakuten_data.report import DataReport

OPTIONS = PrepareOptions(progress=False)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in dataset.SPLITS}


def _issue_codes(report: DataReport) -> dict[str, int]:
    return {i.code: i.count for i in report.issues}


def test_real_sample_is_prepared_with_missing_images_reported(
    real_raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "processed"
    report = prepare(real_raw, out, OPTIONS)
    tables = _tables(out)
    assert report.status == "ok" and report.raw_rows == 201 and report.rows == 201
    assert sum(len(t) for t in tables.values()) == 201
    for table in tables.values():
        assert tuple(table.columns) == dataset.PROCESSED_COLUMNS
        assert str(table["productid"].dtype) == "int64" and str(table["label"].dtype) == "int64"
    everything = pd.concat(tables.values())
    assert everything["productid"].is_unique  # disjoint splits

    # The images: only those copied from ../shared are present; the rest are reported missing.
    present = {p.name for p in (real_raw / "images" / "image_train").iterdir()}
    with_image = everything[everything["image_path"] != ""]
    assert {Path(p).name for p in with_image["image_path"]} == present
    assert report.images.present == len(present) and report.images.missing == 201 - len(present)
    codes = _issue_codes(report)
    assert codes["missing_image"] == 201 - len(present)
    assert codes["empty_description"] == 87
    assert "unsplittable_classes" in codes and "absent_classes" in codes
    mojibake = next(i for i in report.issues if i.code == "mojibake")  # real, in the raw sample
    assert mojibake.examples[0].startswith("row 14, description: ") and "Â·" in mojibake.examples[0]
    for relative in with_image["image_path"]:  # relative to raw_dir, as the contract says
        assert decode_image_file(real_raw / relative, size=8).shape == (8, 8, 3)

    # Texts are the core cleaning of designation + description; labels follow CATEGORIES order.
    x = pd.read_csv(real_raw / dataset.X_TRAIN_FILE, index_col=0, keep_default_na=False)
    y = pd.read_csv(real_raw / dataset.Y_TRAIN_FILE, index_col=0)
    row = everything.set_index("productid").loc[int(x.at[4, "productid"])]
    assert row["text"] == product_text(x.at[4, "designation"], x.at[4, "description"])
    assert "idées" in row["text"] and "&eacute;" not in row["text"]
    assert row["prdtypecode"] == y.at[4, "prdtypecode"]
    assert row["label"] == CategoryIndex().index_of(int(y.at[4, "prdtypecode"]))
    assert row["description"] == x.at[4, "description"]

    written = json.loads((out / dataset.REPORT_FILE).read_text())
    assert written["raw_dir"] == real_raw.as_posix() and written["seed"] == 42
    assert written["class_counts"]["2583"] == 23
    assert sum(s["rows"] for s in written["splits"].values()) == 201
    assert len(written["fingerprint"]) == 64


def test_generated_sample_splits_are_stratified(small_sample: Path, tmp_path: Path) -> None:
    report = prepare(small_sample, tmp_path / "processed", OPTIONS)
    tables = _tables(tmp_path / "processed")
    assert report.rows == 300 and report.images.present == 300
    everything = pd.concat(tables.values())
    x = pd.read_csv(small_sample / dataset.X_TRAIN_FILE, index_col=0)
    assert everything["productid"].is_unique  # disjoint
    assert set(everything["productid"]) == set(x["productid"])  # every row, once
    assert all((t["image_path"] != "").all() for t in tables.values())
    assert len(tables["val"]) == pytest.approx(30, abs=4)
    assert len(tables["test"]) == pytest.approx(30, abs=4)
    totals = pd.concat(tables.values())["prdtypecode"].value_counts()
    assert set(totals.index) == set(CODES)
    for name, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        counts = tables[name]["prdtypecode"].value_counts()
        assert set(counts.index) == set(CODES)  # every class (>= 6 rows) is in every split
        for code, n in totals.items():
            assert abs(counts[code] - n * share) <= 1.0, (name, code)
    assert report.splits["val"].per_class == {
        str(c): int(tables["val"]["prdtypecode"].eq(c).sum()) for c in CODES
    }


def test_prepare_is_deterministic_and_seeded(small_sample: Path, tmp_path: Path) -> None:
    prepare(small_sample, tmp_path / "a", OPTIONS)
    prepare(small_sample, tmp_path / "b", OPTIONS)
    prepare(small_sample, tmp_path / "c", PrepareOptions(seed=3, progress=False))
    a, b, c = _tables(tmp_path / "a"), _tables(tmp_path / "b"), _tables(tmp_path / "c")
    for name in dataset.SPLITS:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert (tmp_path / "a" / dataset.REPORT_FILE).read_bytes() == (
        tmp_path / "b" / dataset.REPORT_FILE
    ).read_bytes()
    assert set(a["val"]["productid"]) != set(c["val"]["productid"])


def test_fingerprint_follows_the_inputs(sample_copy: Path, tmp_path: Path) -> None:
    first = prepare(sample_copy, tmp_path / "a", OPTIONS).fingerprint
    image = next((sample_copy / "images" / "image_train").iterdir())
    image.write_bytes(image.read_bytes() + b"\0")  # same picture, one trailing byte more
    second = prepare(sample_copy, tmp_path / "b", OPTIONS).fingerprint
    assert first != second


def test_cli_prepare_prints_counts_and_warnings(real_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    result = CliRunner().invoke(
        app, ["prepare", "--raw", str(real_raw), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "prepared 201 of 201 rows" in result.output
    assert "[missing_image]" in result.output
    assert (out / "train.parquet").is_file() and (out / dataset.REPORT_FILE).is_file()


def test_min_class_rows_makes_small_classes_fatal(real_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    result = CliRunner().invoke(
        app, ["prepare", "--raw", str(real_raw), "--out", str(out), "--min-class-rows", "3",
              "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "[class_too_small]" in result.output and "2220: 1 rows" in result.output
    assert not (out / "train.parquet").exists()
    assert json.loads((out / dataset.REPORT_FILE).read_text())["status"] == "failed"
