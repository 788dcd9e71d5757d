"""Strict reading of one raw CSV file: UTF-8, parsable, expected columns, integer index.

Files must be UTF-8 (as on the Hub). A file in another encoding (Latin-1, Windows-1252) is an
error naming the file, the line and the offending byte, never silently re-decoded: guessing an
encoding can turn accents into garbage that no later step would notice. Every cell is read as a
string (empty cells stay ``""``) so that the checks see exactly what the file holds.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd

from rakuten_data.report import FileDigest, Issue, issue

_BOM = b"\xef\xbb\xbf"


def read_table(
    path: Path, *, columns: tuple[str, ...], issues: list[Issue]
) -> tuple[pd.DataFrame | None, FileDigest | None]:
    """Read one raw CSV as strings with its integer index; ``None`` after an error issue."""
    name = path.name
    if not path.is_file():
        issues.append(issue("missing_file", f"{name} not found in {path.parent}", severity="error"))
        return None, None
    data = path.read_bytes()
    digest = FileDigest(path=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if data.startswith(_BOM):
        issues.append(issue("utf8_bom", f"{name} starts with a UTF-8 BOM (ignored)", file=name))
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        snippet = data[start : exc.start + 20].decode("utf-8", "replace").split("\n")[0]
        issues.append(
            issue(
                "encoding",
                f"{name} is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
                "the Rakuten files are UTF-8. If it was saved as Latin-1/Windows-1252, convert "
                f"it first, e.g. `iconv -f cp1252 -t utf-8 {name}`",
                severity="error",
                file=name,
                examples=[snippet],
            )
        )
        return None, digest
    try:
        frame = pd.read_csv(
            io.StringIO(text), index_col=0, dtype=str, keep_default_na=False, na_filter=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        issues.append(
            issue("csv_parse", f"{name} is not a readable CSV: {exc}", severity="error", file=name)
        )
        return None, digest
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        issues.append(
            issue(
                "missing_columns",
                f"{name} lacks column(s) {', '.join(missing)}; expected "
                f"',{','.join(columns)}', found ',{','.join(map(str, frame.columns))}'",
                severity="error",
                file=name,
            )
        )
        return None, digest
    extra = [str(c) for c in frame.columns if c not in columns]
    if extra:
        issues.append(
            issue(
                "extra_columns",
                f"{name} has extra column(s) (ignored)",
                file=name,
                count=len(extra),
                examples=extra,
            )
        )
    index = pd.to_numeric(pd.Series(frame.index, dtype=str), errors="coerce")
    if index.isna().any() or (index % 1 != 0).any():
        bad = [str(v) for v, n in zip(frame.index, index.isna(), strict=True) if n][:5]
        issues.append(
            issue(
                "bad_index",
                f"{name} has a non-integer row index",
                severity="error",
                file=name,
                count=int(index.isna().sum()),
                examples=bad,
            )
        )
        return None, digest
    frame.index = pd.Index(index.astype("int64"), name=None)
    duplicated = frame.index[frame.index.duplicated()]
    if len(duplicated):
        issues.append(
            issue(
                "duplicate_index",
                f"{name} repeats row indexes, so X and Y cannot be joined unambiguously",
                severity="error",
                file=name,
                count=len(duplicated),
                examples=[str(v) for v in duplicated],
            )
        )
        return None, digest
    return frame[list(columns)], digest
