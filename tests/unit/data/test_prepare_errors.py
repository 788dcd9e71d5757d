"""Bad raw data: fatal problems exit 2 with a clear message, others are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from rakuten_core import dataset
from rakuten_data.cli import app

X = dataset.X_TRAIN_FILE
Y = dataset.Y_TRAIN_FILE


def _run(raw: Path, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["prepare", "--raw", str(raw), "--out", str(out), "--no-progress"]
    )
    return result.exit_code, result.output


def _report(out: Path) -> dict[str, object]:
    report: dict[str, object] = json.loads((out / dataset.REPORT_FILE).read_text())
    return report


def _issue(out: Path, code: str) -> dict[str, object]:
    issues = _report(out)["issues"]
    assert isinstance(issues, list)
    found = [i for i in issues if i["code"] == code]
    assert found, f"no {code} issue in {issues}"
    return dict(found[0])


def _rewrite(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, encoding="utf-8", lineterminator="\n")


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)


def test_missing_column_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    _rewrite(sample_copy / X, _read(sample_copy / X).drop(columns=["description"]))
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2
    assert "X_train_update.csv lacks column(s) description" in output
    assert _report(tmp_path / "out")["status"] == "failed"


def test_unknown_labels_are_fatal_and_listed(sample_copy: Path, tmp_path: Path) -> None:
    y = _read(sample_copy / Y)
    y.iloc[[3, 7], 0] = "9999"
    y.iloc[11, 0] = "1234"
    _rewrite(sample_copy / Y, y)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2
    assert "prdtypecode(s) 1234, 9999 are not among the 27 known categories" in output
    assert _issue(tmp_path / "out", "unknown_labels")["count"] == 3


def test_non_integer_label_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    y = _read(sample_copy / Y)
    y.iloc[5, 0] = "livres"
    _rewrite(sample_copy / Y, y)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and "[bad_labels]" in output and "'livres'" in output


def test_row_count_mismatch_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    _rewrite(sample_copy / Y, _read(sample_copy / Y).iloc[:-5])
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2
    assert "X_train_update.csv has 300 rows but Y_train_CVw08PX.csv has 295" in output


def test_index_mismatch_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    y = _read(sample_copy / Y)
    y.index = y.index.astype(int) + 1000
    _rewrite(sample_copy / Y, y)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and "[index_mismatch]" in output


def test_duplicate_index_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    x = _read(sample_copy / X)
    x.index = [0, *x.index[:-1]]
    _rewrite(sample_copy / X, x)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and "[duplicate_index]" in output and "repeats row indexes" in output


def test_missing_label_file_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / Y).unlink()
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and f"{Y} not found" in output


def test_latin1_file_is_refused_with_the_file_and_line(real_raw: Path, tmp_path: Path) -> None:
    """Decision: no encoding guessing; a non-UTF-8 file is named with the offending line."""
    text = (real_raw / X).read_text(encoding="utf-8")
    (real_raw / X).write_bytes(text.encode("latin-1", errors="replace"))
    line, char = next(
        (n, c) for n, row in enumerate(text.splitlines(), 1) for c in row if ord(c) > 127
    )
    code, output = _run(real_raw, tmp_path / "out")
    assert code == 2
    byte = char.encode("latin-1")[0]
    assert f"X_train_update.csv is not valid UTF-8 (byte 0x{byte:02x} on line {line})" in output
    assert "iconv" in output
    assert not (tmp_path / "out" / "train.parquet").exists()


def test_unparsable_csv_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / Y).write_text(',prdtypecode\n0,"10\n1,40\n', encoding="utf-8")
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and "[csv_parse]" in output and "not a readable CSV" in output


def test_unreadable_and_missing_images_are_reported_not_fatal(
    sample_copy: Path, tmp_path: Path
) -> None:
    images = sorted((sample_copy / "images" / "image_train").iterdir())
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated JPEG
    images[1].write_bytes(b"<html>not an image</html>")
    images[2].unlink()
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 0, output
    unreadable = _issue(tmp_path / "out", "unreadable_image")
    assert unreadable["count"] == 2
    assert isinstance(unreadable["examples"], list)
    assert {e.split(":")[0].rsplit("/", 1)[-1] for e in unreadable["examples"]} == {
        images[0].name,
        images[1].name,
    }
    assert _issue(tmp_path / "out", "missing_image")["count"] == 1
    tables = pd.concat(pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in dataset.SPLITS)
    assert len(tables) == 300  # rows stay, without image
    blank = set(tables.loc[tables["image_path"] == "", "imageid"])
    assert blank == {int(p.name.split("_")[1]) for p in images[:3]}


def test_empty_texts_duplicates_and_mojibake_are_warnings(
    sample_copy: Path, tmp_path: Path
) -> None:
    x = _read(sample_copy / X)
    y = _read(sample_copy / Y)
    x.iloc[0, 0:2] = ["", "Une description sans titre."]  # empty designation only
    x.iloc[1, 0:2] = ["", ""]  # no text at all, image still there
    x.iloc[2, 0] = "CafÃ© moulu 250g"  # UTF-8 decoded as Latin-1 upstream
    x.iloc[4, 0:2] = x.iloc[3, 0:2].to_list()
    y.iloc[4, 0] = y.iloc[3, 0]
    x.iloc[5, 2] = x.iloc[6, 2]  # same productid twice
    _rewrite(sample_copy / X, x)
    _rewrite(sample_copy / Y, y)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 0, output
    assert _issue(tmp_path / "out", "empty_designation")["count"] == 2
    assert _issue(tmp_path / "out", "empty_text")["examples"] == ["row 1"]
    assert _issue(tmp_path / "out", "mojibake")["examples"] == [
        "row 2, designation: …CafÃ© moulu 250g…"
    ]
    assert _issue(tmp_path / "out", "duplicate_rows")["count"] >= 1
    assert _issue(tmp_path / "out", "duplicate_productid")["count"] == 1
    assert _report(tmp_path / "out")["rows"] == 300  # the image keeps the text-less row usable


def test_rows_without_text_or_image_are_dropped(sample_copy: Path, tmp_path: Path) -> None:
    x = _read(sample_copy / X)
    x.iloc[1, 0:2] = ["", ""]
    _rewrite(sample_copy / X, x)
    (sample_copy / "images" / "image_train" / dataset.image_filename(
        int(x.iloc[1, 3]), int(x.iloc[1, 2]))).unlink()  # fmt: skip
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 0, output
    assert _issue(tmp_path / "out", "unusable_rows")["count"] == 1
    assert _report(tmp_path / "out")["rows"] == 299


def test_too_few_rows_is_fatal(sample_copy: Path, tmp_path: Path) -> None:
    _rewrite(sample_copy / X, _read(sample_copy / X).iloc[:2])
    _rewrite(sample_copy / Y, _read(sample_copy / Y).iloc[:2])
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2 and "[too_few_rows]" in output


def test_failure_removes_stale_tables(sample_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(sample_copy, out)[0] == 0 and (out / "train.parquet").exists()
    (sample_copy / Y).unlink()
    assert _run(sample_copy, out)[0] == 2
    assert not any(out.glob("*.parquet"))


def test_non_integer_ids_are_fatal(sample_copy: Path, tmp_path: Path) -> None:
    x = _read(sample_copy / X)
    x.iloc[3, 2] = "12ab"
    x.iloc[4, 3] = ""
    _rewrite(sample_copy / X, x)
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 2
    assert "[bad_productid]" in output and "row 3: '12ab'" in output
    assert "[bad_imageid]" in output and "row 4: ''" in output


def test_problems_of_the_test_file_are_warnings(sample_copy: Path, tmp_path: Path) -> None:
    """X_test is not a training input: a broken one is reported, preparation goes on."""
    _rewrite(
        sample_copy / dataset.X_TEST_FILE, _read(sample_copy / dataset.X_TEST_FILE).iloc[:, :2]
    )
    code, output = _run(sample_copy, tmp_path / "out")
    assert code == 0, output
    found = _issue(tmp_path / "out", "test_missing_columns")
    assert found["severity"] == "warning" and found["file"] == dataset.X_TEST_FILE
