"""Validation of the raw CSV files: read strictly, report everything, fail on the fatal.

Policy: anything that makes training impossible or ambiguous is an ``error`` (file missing or
not UTF-8, unparsable CSV, missing columns, non-integer ids or index, duplicate index, unknown or
missing labels, X and Y not describing the same rows). Anything a model can live with is a
``warning`` (empty texts, duplicate products, conflicting labels, mojibake, extra columns).

Reading the files (and the encoding policy) is :mod:`rakuten_data.tables`.
"""

from __future__ import annotations

import re

import pandas as pd

from rakuten_core import dataset
from rakuten_core.categories import CODES
from rakuten_data.report import Issue, issue

_MOJIBAKE = re.compile(r"Ã[\u0080-\u00bf]|Â[\u00a0-\u00bf]")


def _int_column(frame: pd.DataFrame, column: str, name: str, issues: list[Issue]) -> pd.Series:
    values: pd.Series = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | (values < 0) | (values % 1 != 0)
    if bad.any():
        examples = [f"row {i}: {frame.at[i, column]!r}" for i in frame.index[bad][:5]]
        issues.append(
            issue(
                f"bad_{column}",
                f"{name}: {column} must be a non-negative integer",
                severity="error",
                file=name,
                count=int(bad.sum()),
                examples=examples,
            )
        )
    return values


def _mojibake_example(x: pd.DataFrame, row: int) -> str:
    """``row N, column: …context…`` around the first double-encoded sequence of a row."""
    for column in ("designation", "description"):
        text = str(x.at[row, column])
        found = _MOJIBAKE.search(text)
        if found:
            context = text[max(0, found.start() - 25) : found.end() + 25]
            return f"row {row}, {column}: …{context}…"
    return f"row {row}"


def check_products(x: pd.DataFrame, issues: list[Issue]) -> pd.DataFrame:
    """Check ids and texts of the product table; returns it with int64 ids (if valid)."""
    name = dataset.X_TRAIN_FILE
    productid = _int_column(x, "productid", name, issues)
    imageid = _int_column(x, "imageid", name, issues)
    if any(i.severity == "error" and i.file == name for i in issues):
        return x
    x = x.assign(productid=productid.astype("int64"), imageid=imageid.astype("int64"))
    for column in ("productid", "imageid"):
        dup = x[column][x[column].duplicated()]
        if len(dup):
            issues.append(
                issue(
                    f"duplicate_{column}",
                    f"{name}: {len(dup)} rows repeat a {column} already seen",
                    file=name,
                    count=len(dup),
                    examples=[str(v) for v in dup],
                )
            )
    empty_title = x["designation"].str.strip() == ""
    empty_body = x["description"].str.strip() == ""
    for code, mask, what in (
        ("empty_designation", empty_title, "an empty designation"),
        ("empty_description", empty_body, "an empty description (normal in this dataset)"),
        ("empty_text", empty_title & empty_body, "neither designation nor description"),
    ):
        if mask.any():
            issues.append(
                issue(
                    code,
                    f"{name}: {int(mask.sum())} rows have {what}",
                    file=name,
                    count=int(mask.sum()),
                    examples=[f"row {i}" for i in x.index[mask]],
                )
            )
    garbled = x["designation"].str.contains(_MOJIBAKE) | x["description"].str.contains(_MOJIBAKE)
    if garbled.any():
        issues.append(
            issue(
                "mojibake",
                f"{name}: {int(garbled.sum())} rows look double-encoded (e.g. 'Ã©' for 'é')",
                file=name,
                count=int(garbled.sum()),
                examples=[_mojibake_example(x, i) for i in x.index[garbled][:5]],
            )
        )
    return x


def check_labels(y: pd.DataFrame, issues: list[Issue]) -> pd.Series:
    """Labels as int64; unknown or non-integer codes are errors listing what was found."""
    name = dataset.Y_TRAIN_FILE
    codes: pd.Series = pd.to_numeric(y[dataset.LABEL_COLUMN].str.strip(), errors="coerce")
    bad = codes.isna() | (codes % 1 != 0)
    if bad.any():
        issues.append(
            issue(
                "bad_labels",
                f"{name}: {int(bad.sum())} labels are not integers",
                severity="error",
                file=name,
                count=int(bad.sum()),
                examples=[f"row {i}: {y.at[i, dataset.LABEL_COLUMN]!r}" for i in y.index[bad]],
            )
        )
        return codes
    codes = codes.astype("int64")
    unknown = codes[~codes.isin(CODES)]
    if len(unknown):
        found = unknown.value_counts().sort_index()
        issues.append(
            issue(
                "unknown_labels",
                f"{name}: prdtypecode(s) "
                f"{', '.join(map(str, found.index))} are not among the 27 known "
                "categories (rakuten_core.categories)",
                severity="error",
                file=name,
                count=len(unknown),
                examples=[f"{c}: {n} rows" for c, n in found.items()],
            )
        )
    return codes


def check_alignment(x: pd.DataFrame, y: pd.DataFrame, issues: list[Issue]) -> None:
    """X and Y must describe the same rows (same count, same index values)."""
    if len(x) != len(y):
        issues.append(
            issue(
                "row_count_mismatch",
                f"{dataset.X_TRAIN_FILE} has {len(x)} rows but "
                f"{dataset.Y_TRAIN_FILE} has {len(y)}; they must describe the same "
                "products",
                severity="error",
            )
        )
        return
    only_x = x.index.difference(y.index)
    if len(only_x):
        issues.append(
            issue(
                "index_mismatch",
                f"{len(only_x)} row indexes of "
                f"{dataset.X_TRAIN_FILE} are absent from {dataset.Y_TRAIN_FILE}",
                severity="error",
                count=len(only_x),
                examples=[str(v) for v in only_x],
            )
        )
    elif not x.index.equals(y.index):
        issues.append(
            issue(
                "row_order",
                "the label file lists the rows in another order (joined on the index)",
                file=dataset.Y_TRAIN_FILE,
            )
        )


def check_duplicates(frame: pd.DataFrame, issues: list[Issue]) -> None:
    """Report repeated listings, and identical listings filed under different classes."""
    keys = ["designation", "description"]
    repeated = frame[frame.duplicated(keys + [dataset.LABEL_COLUMN])]
    if len(repeated):
        issues.append(
            issue(
                "duplicate_rows",
                f"{len(repeated)} rows repeat the text and label of an earlier row",
                count=len(repeated),
                examples=[f"row {i}" for i in repeated.index],
            )
        )
    labels_per_text = frame.groupby(keys)[dataset.LABEL_COLUMN].nunique()
    conflicting = labels_per_text[labels_per_text > 1]
    if len(conflicting):
        issues.append(
            issue(
                "conflicting_labels",
                f"{len(conflicting)} identical listings carry different labels",
                count=len(conflicting),
                examples=[str(k[0]) for k in conflicting.index],
            )
        )
