"""Raw data -> validated, cleaned, stratified train/val/test tables plus a data report.

The raw directory is only read. Every problem found is collected first and reported together
(one run shows all that is wrong, not the first thing); preparation stops only on errors that
make training impossible. See :mod:`rakuten_data.validate` for the policy.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rakuten_core import dataset
from rakuten_core.categories import CODES, CategoryIndex
from rakuten_core.errors import DataValidationError
from rakuten_core.text import product_text
from rakuten_data import validate
from rakuten_data.feedback_prepare import load_feedback
from rakuten_data.images import check_images
from rakuten_data.report import DataReport, FileDigest, Issue, SplitSummary, issue
from rakuten_data.split import stratified_split, unsplittable_classes
from rakuten_data.tables import read_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareOptions:
    """Tunables of the prepare stage (``params.yaml`` section ``prepare``)."""

    val_size: float = 0.1
    test_size: float = 0.1
    seed: int = 42
    min_class_rows: int = 1
    workers: int = 2
    progress: bool = True


class PreparationError(DataValidationError):  # type: ignore[misc, unused-ignore]  # core: no py.typed
    """The raw data cannot be prepared; carries the report with every issue found."""

    def __init__(self, message: str, report: DataReport) -> None:
        super().__init__(message)
        self.report = report


def fingerprint(inputs: list[FileDigest], images_sha256: str) -> str:
    """sha256 over the input CSVs' hashes and the readable images' combined hash."""
    lines = [f"{d.path}\t{d.sha256}\n" for d in sorted(inputs, key=lambda d: d.path)]
    lines.append(f"{dataset.IMAGES_DIR}/{dataset.TRAIN_IMAGES_DIR}\t{images_sha256}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _check_test_file(raw: Path, issues: list[Issue]) -> None:
    """The test file is not used for training; problems with it are warnings only."""
    found: list[Issue] = []
    if (raw / dataset.X_TEST_FILE).exists():
        read_table(raw / dataset.X_TEST_FILE, columns=dataset.RAW_TEXT_COLUMNS, issues=found)
    else:
        found.append(issue("missing_file", f"{dataset.X_TEST_FILE} not found (not needed here)"))
    issues.extend(
        i.model_copy(update={"severity": "warning", "code": f"test_{i.code}"}) for i in found
    )


def _fail(report: DataReport, out: Path) -> PreparationError:
    for name in dataset.SPLITS:  # never leave tables that disagree with the report
        (out / f"{name}.parquet").unlink(missing_ok=True)
    failed = report.model_copy(update={"status": "failed"})
    failed.write(out / dataset.REPORT_FILE)
    lines = [f"[{i.code}] {i.message}" for i in failed.errors]
    return PreparationError("cannot prepare the raw data:\n  " + "\n  ".join(lines), failed)


def _class_issues(labels: pd.Series, options: PrepareOptions) -> list[Issue]:
    counts = labels.value_counts()
    found: list[Issue] = []
    absent = [c for c in CODES if c not in counts.index]
    if absent:
        found.append(
            issue(
                "absent_classes",
                f"{len(absent)} of {len(CODES)} categories have no rows",
                count=len(absent),
                examples=[str(c) for c in absent],
            )
        )
    too_small = counts[counts < options.min_class_rows]
    if len(too_small):
        found.append(
            issue(
                "class_too_small",
                f"{len(too_small)} classes have fewer than "
                f"--min-class-rows={options.min_class_rows} rows",
                severity="error",
                count=len(too_small),
                examples=[f"{c}: {n} rows" for c, n in too_small.items()],
            )
        )
    small = unsplittable_classes(
        labels.to_numpy(), val_size=options.val_size, test_size=options.test_size
    )
    if small:
        found.append(
            issue(
                "unsplittable_classes",
                f"{len(small)} classes are too small to appear "
                "in every split; all their rows go to train",
                count=len(small),
                examples=[f"{c}: {n} rows" for c, n in small.items()],
            )
        )
    if counts.size < 2 or len(labels) - sum(small.values()) < 3:
        found.append(
            issue(
                "too_few_rows",
                f"{len(labels)} usable rows in {counts.size} classes: "
                "not enough for a stratified train/val/test split",
                severity="error",
            )
        )
    return found


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    index = CategoryIndex()
    table = pd.DataFrame(
        {
            "productid": frame["productid"].astype("int64"),
            "imageid": frame["imageid"].astype("int64"),
            "designation": frame["designation"].astype(str),
            "description": frame["description"].astype(str),
            "text": frame["text"].astype(str),
            "image_path": frame["image_path"].astype(str),
            "prdtypecode": frame[dataset.LABEL_COLUMN].astype("int64"),
            "label": frame[dataset.LABEL_COLUMN].map(index.index_of).astype("int64"),
        }
    )
    return table[list(dataset.PROCESSED_COLUMNS)].reset_index(drop=True)


def _summary(table: pd.DataFrame) -> SplitSummary:
    counts = table["prdtypecode"].value_counts()
    return SplitSummary(
        rows=len(table),
        with_image=int((table["image_path"] != "").sum()),
        per_class={str(c): int(counts.get(c, 0)) for c in CODES},
    )


def prepare(
    raw: Path, out: Path, options: PrepareOptions, feedback: Path | None = None
) -> DataReport:
    """Validate ``raw``, write ``out/{train,val,test}.parquet`` and ``out/data_report.json``.

    ``feedback``: a slice written by ``export-feedback`` whose training rows join train and val
    (:mod:`rakuten_data.feedback_prepare`); the test split is the same with or without it.

    Raises:
        PreparationError: an error-level issue; the failed report is still written to ``out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    issues: list[Issue] = []
    x, x_digest = read_table(
        raw / dataset.X_TRAIN_FILE, columns=dataset.RAW_TEXT_COLUMNS, issues=issues
    )
    y, y_digest = read_table(
        raw / dataset.Y_TRAIN_FILE, columns=(dataset.LABEL_COLUMN,), issues=issues
    )
    _check_test_file(raw, issues)
    report = DataReport(
        raw_dir=raw.as_posix(),
        seed=options.seed,
        val_size=options.val_size,
        test_size=options.test_size,
        inputs=[d for d in (x_digest, y_digest) if d is not None],
        raw_rows=len(x) if x is not None else 0,
    )
    report.issues = issues  # the same list: issues found below land in the report
    if x is not None:
        x = validate.check_products(x, issues)
    codes = validate.check_labels(y, issues) if y is not None else None
    if x is not None and y is not None:
        validate.check_alignment(x, y, issues)
    if report.errors or x is None or codes is None:
        raise _fail(report, out)

    frame = x.assign(**{dataset.LABEL_COLUMN: codes.reindex(x.index)})
    validate.check_duplicates(frame, issues)
    paths, images, image_issues = check_images(
        raw, frame, workers=options.workers, progress=options.progress
    )
    issues.extend(image_issues)
    frame = frame.assign(
        image_path=paths,
        text=[
            product_text(d, b)
            for d, b in zip(frame["designation"], frame["description"], strict=True)
        ],
    )
    unusable = (frame["text"] == "") & (frame["image_path"] == "")
    if unusable.any():
        issues.append(
            issue(
                "unusable_rows",
                f"{int(unusable.sum())} rows have neither text nor "
                "a readable image and are dropped",
                count=int(unusable.sum()),
                examples=[f"row {i}" for i in frame.index[unusable]],
            )
        )
        frame = frame[~unusable]
    issues.extend(_class_issues(frame[dataset.LABEL_COLUMN], options))
    report.images = images
    report.fingerprint = fingerprint(report.inputs, images.sha256)
    if report.errors:
        raise _fail(report, out)

    positions = stratified_split(
        frame[dataset.LABEL_COLUMN].to_numpy(),
        val_size=options.val_size,
        test_size=options.test_size,
        seed=options.seed,
    )
    parts = {name: frame.iloc[positions[name]] for name in dataset.SPLITS}
    if feedback is not None:
        extra = load_feedback(
            feedback,
            raw,
            test=parts["test"],
            trainval=pd.concat([parts["train"], parts["val"]]),
            val_size=options.val_size,
            seed=options.seed,
            issues=issues,
            workers=options.workers,
        )
        if report.errors:
            raise _fail(report, out)
        if extra is not None:
            parts["train"] = pd.concat([parts["train"], extra.train])
            parts["val"] = pd.concat([parts["val"], extra.val])
            report.feedback = extra.summary
            report.fingerprint = fingerprint(
                report.inputs + extra.inputs, f"{images.sha256}+{extra.images_sha256}"
            )
    for name in dataset.SPLITS:
        table = _table(parts[name])
        tmp = out / f".{name}.parquet.tmp"
        table.to_parquet(tmp, index=False, engine="fastparquet")
        tmp.replace(out / f"{name}.parquet")
        report.splits[name] = _summary(table)
    labels = pd.concat([parts[name][dataset.LABEL_COLUMN] for name in dataset.SPLITS])
    report.rows = len(labels)
    report.class_counts = {str(c): int(n) for c, n in labels.value_counts().sort_index().items()}
    report.write(out / dataset.REPORT_FILE)
    logger.info(
        "prepared %d rows from %s: %s; %d warnings",
        report.rows,
        raw,
        ", ".join(f"{n}={s.rows}" for n, s in report.splits.items()),
        len(report.warnings),
    )
    return report
