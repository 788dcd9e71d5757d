"""Streaming reader for product CSVs in the challenge format.

The challenge files look like ``,designation,description,productid,imageid``: an unnamed index
column, then the product fields; descriptions are quoted HTML that may span several physical
lines. Python's ``csv`` module reads them record by record (bounded memory) and knows the
physical line of every record, so a malformed file fails with a message naming the line where
the bad record starts, which pandas' chunked reader cannot do for multi-line records.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rakuten_core.errors import InvalidInputError

REQUIRED_COLUMNS = ("designation", "description", "productid", "imageid")
LABEL_COLUMN = "prdtypecode"
_INDEX_NAMES = frozenset({"", "unnamed: 0", "index"})
# Real descriptions exceed the csv module's default 128 KiB field limit only when a file is
# broken (e.g. an unterminated quote swallowing the rest of the file); 8 MiB is far above any
# real product and still bounds memory.
_FIELD_LIMIT = 8 * 1024 * 1024


class CsvFormatError(InvalidInputError):
    """The CSV cannot be read as products; ``line`` is the 1-based physical line at fault."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}: line {line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class ProductRow:
    """One product record of the input CSV, before any cleaning."""

    line: int
    index: int
    designation: str
    description: str
    productid: int
    imageid: int


def _parse_int(value: str, *, name: str, path: Path, line: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise CsvFormatError(path, line, f"{name} {value[:40]!r} is not an integer") from None
    if number < 0:
        raise CsvFormatError(path, line, f"{name} {number} is negative")
    return number


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(start_line, fields)`` for every record, turning decode errors into line errors."""
    csv.field_size_limit(max(csv.field_size_limit(), min(_FIELD_LIMIT, sys.maxsize)))
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        last = 0
        while True:
            start = last + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CsvFormatError(
                    path, start, f"bad quoting in the record starting here ({exc})"
                ) from None
            except UnicodeDecodeError:
                raise CsvFormatError(path, reader.line_num + 1, "not valid UTF-8 text") from None
            last = reader.line_num
            if any("\x00" in f for f in fields):
                raise CsvFormatError(path, start, "contains a NUL byte (binary file?)")
            yield start, fields


class ProductCsv:
    """A product CSV on disk; :meth:`rows` re-reads it lazily each time it is called."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"{self.path}: CSV file not found")

    def rows(self) -> Iterator[ProductRow]:
        """Yield validated rows; raises :class:`CsvFormatError` at the first malformed record."""
        records = _records(self.path)
        try:
            _, header = next(records)
        except StopIteration:
            raise CsvFormatError(self.path, 1, "file is empty (no header)") from None
        names = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise CsvFormatError(
                self.path,
                1,
                f"header lacks column(s) {', '.join(missing)}; expected "
                f"',{','.join(REQUIRED_COLUMNS)}' (challenge format)",
            )
        pos = {c: names.index(c) for c in REQUIRED_COLUMNS}
        index_pos = 0 if names[0] in _INDEX_NAMES else None
        width = len(header)
        for number, (line, fields) in enumerate(records):
            if len(fields) != width:
                if not fields or fields == [""]:
                    continue  # blank line (trailing newline variants)
                raise CsvFormatError(
                    self.path,
                    line,
                    f"expected {width} fields as in the header, found {len(fields)}",
                )
            index = (
                number
                if index_pos is None
                else _parse_int(fields[index_pos], name="index", path=self.path, line=line)
            )
            yield ProductRow(
                line=line,
                index=index,
                designation=fields[pos["designation"]],
                description=fields[pos["description"]],
                productid=_parse_int(
                    fields[pos["productid"]], name="productid", path=self.path, line=line
                ),
                imageid=_parse_int(
                    fields[pos["imageid"]], name="imageid", path=self.path, line=line
                ),
            )

    def validate(self) -> int:
        """Read the whole file once (nothing kept) and return its number of rows."""
        return sum(1 for _ in self.rows())


def batched(rows: Iterator[ProductRow], size: int) -> Iterator[list[ProductRow]]:
    """Group ``rows`` into lists of at most ``size``."""
    batch: list[ProductRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_labels(path: str | Path) -> dict[int, int]:
    """Read a ``Y_train``-format file (``,prdtypecode``) into ``{index: prdtypecode}``."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{file}: labels file not found")
    records = _records(file)
    try:
        _, header = next(records)
    except StopIteration:
        raise CsvFormatError(file, 1, "file is empty (no header)") from None
    names = [h.strip().lower() for h in header]
    if LABEL_COLUMN not in names:
        raise CsvFormatError(file, 1, f"header lacks column {LABEL_COLUMN} (',{LABEL_COLUMN}')")
    code_pos = names.index(LABEL_COLUMN)
    index_pos = 0 if names[0] in _INDEX_NAMES else None
    labels: dict[int, int] = {}
    for number, (line, fields) in enumerate(records):
        if len(fields) != len(header):
            if not fields or fields == [""]:
                continue
            raise CsvFormatError(file, line, f"expected {len(header)} fields, found {len(fields)}")
        index = (
            number
            if index_pos is None
            else _parse_int(fields[index_pos], name="index", path=file, line=line)
        )
        if index in labels:
            raise CsvFormatError(file, line, f"index {index} appears twice")
        labels[index] = _parse_int(fields[code_pos], name=LABEL_COLUMN, path=file, line=line)
    return labels
