"""Streaming CSV reader: the real challenge format, and malformed files naming their line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rakuten_core.errors import InvalidInputError
from rakuten_predict.reader import CsvFormatError, ProductCsv, batched, read_labels
from tests.utils.paths import shared_data

HEADER = ",designation,description,productid,imageid\n"


def _write(tmp_path: Path, text: str, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("name", ["X_train.csv", "X_test_update.csv"])
def test_real_challenge_files_read_like_pandas(name: str) -> None:
    path = shared_data("raw_sample", name)
    rows = list(ProductCsv(path).rows())
    frame = pd.read_csv(path, index_col=0)
    assert len(rows) == len(frame) > 100
    assert [r.index for r in rows] == frame.index.tolist()
    assert [r.productid for r in rows] == frame["productid"].tolist()
    assert [r.imageid for r in rows] == frame["imageid"].tolist()
    assert [r.designation for r in rows] == frame["designation"].tolist()
    assert [r.description for r in rows] == frame["description"].fillna("").tolist()
    assert [r.line for r in rows] == list(range(2, len(rows) + 2))  # one line per record here


def test_line_numbers_are_physical_lines_where_records_start(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + '7,Titre,"ligne 1\nligne 2\nligne 3",11,22\n8,Autre,,33,44\n')
    rows = list(ProductCsv(path).rows())
    assert [(r.line, r.index, r.productid, r.imageid) for r in rows] == [
        (2, 7, 11, 22),
        (5, 8, 33, 44),
    ]
    assert rows[0].description == "ligne 1\nligne 2\nligne 3"


def test_file_without_index_column_numbers_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, "designation,description,productid,imageid\na,,1,2\nb,,3,4\n")
    assert [r.index for r in ProductCsv(path).rows()] == [0, 1]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (HEADER + "0,a,,1,2\n1,b,,3,4,5\n", 3, "expected 5 fields"),
        (HEADER + "0,a,,1,2\n1,b,,abc,4\n", 3, "productid 'abc' is not an integer"),
        (HEADER + "0,a,,1,2\nx,b,,3,4\n", 3, "index 'x' is not an integer"),
        (HEADER + "0,a,,1,-4\n", 2, "imageid -4 is negative"),
        (HEADER + '0,a,,1,2\n1,"b,,3,4\n2,c,,5,6\n', 3, "bad quoting"),
        (HEADER + '0,a,"x"y,1,2\n', 2, "bad quoting"),
        (",designation,productid,imageid\n0,a,1,2\n", 1, "lacks column(s) description"),
        ("", 1, "empty"),
        (HEADER + "0,a\x00,,1,2\n", 2, "NUL"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CsvFormatError) as info:
        ProductCsv(path).validate()
    assert info.value.line == line
    assert f"line {line}:" in str(info.value) and fragment in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(HEADER.encode() + b"0,a,,1,2\n1,caf\xe9,,3,4\n")
    with pytest.raises(CsvFormatError, match="UTF-8"):
        ProductCsv(path).validate()


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        ProductCsv(tmp_path / "nope.csv")


def test_rows_are_read_lazily(tmp_path: Path) -> None:
    # the error is on the last line: the first batch is produced before it is reached
    body = "".join(f"{i},p{i},,{i},{i}\n" for i in range(10))
    path = _write(tmp_path, HEADER + body + "10,x,,bad,1\n")
    batches = batched(ProductCsv(path).rows(), 4)
    assert [r.index for r in next(batches)] == [0, 1, 2, 3]
    with pytest.raises(CsvFormatError, match="line 12"):
        list(batches)


def test_batched_keeps_order_and_remainder() -> None:
    assert [len(b) for b in batched(iter(range(10)), 4)] == [4, 4, 2]  # type: ignore[arg-type]


def test_labels_real_file_and_errors(tmp_path: Path) -> None:
    labels = read_labels(shared_data("raw_sample", "Y_train.csv"))
    frame = pd.read_csv(shared_data("raw_sample", "Y_train.csv"), index_col=0)
    assert labels == frame["prdtypecode"].to_dict()
    dup = _write(tmp_path, ",prdtypecode\n0,10\n0,40\n", "y.csv")
    with pytest.raises(CsvFormatError, match="line 3: index 0 appears twice"):
        read_labels(dup)
    bad = _write(tmp_path, ",code\n0,10\n", "y2.csv")
    with pytest.raises(CsvFormatError, match="prdtypecode"):
        read_labels(bad)
