"""The feedback slice on disk: labelled feedback in the raw layout, plus its manifest.

Layout (``data/feedback``, written by ``export-feedback``, read by ``prepare --feedback``)::

    manifest.json                      what the slice holds (see :class:`SliceManifest`)
    train/X_train_update.csv           ,designation,description,productid,imageid (raw format)
    train/Y_train_CVw08PX.csv          ,prdtypecode
    train/provenance.csv               ,request_id,feedback_at,model_version,
                                       predicted_prdtypecode,image_sha256
    train/images/image_train/image_<imageid>_product_<productid>.jpg
    holdout/X_test_update.csv          the most recent feedback: the gate's "recent feedback set",
    holdout/Y_test.csv                 never trained on (labels in their own file, as for test)
    holdout/provenance.csv
    holdout/images/image_test/...

``train/`` is a raw directory in every respect, so preparation reads and validates it with the
code that reads ``data/raw``. The provenance file keeps what the raw format has no column for
(when the feedback came, which model answered, the image's hash), row for row by index. An image
file keeps the bytes the client sent, whatever its format (every reader sniffs the format; the
name ends in ``.jpg`` as the raw layout wants). The slice is written to a temporary sibling
folder and swapped in, so a reader sees the old slice or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, Field

from rakuten_core import dataset
from rakuten_core.errors import InvalidInputError
from rakuten_data.report import Issue

MANIFEST_FILE = "manifest.json"
TRAIN_DIR = "train"
HOLDOUT_DIR = "holdout"
HOLDOUT_LABELS_FILE = "Y_test.csv"
PROVENANCE_FILE = "provenance.csv"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeedbackRow:
    """One labelled example from serve's records: the product, its true code, where it came from."""

    request_id: str
    username: str  # who gave the feedback (the export caps each user's share, not written out)
    feedback_at: datetime
    designation: str
    description: str
    productid: int
    imageid: int
    prdtypecode: int
    predicted_prdtypecode: int
    model_version: str
    image_sha256: str
    image: Path | None  # the stored image file, None when it was not sent or not kept


class PartSummary(BaseModel):
    """One part of the slice (``train`` or ``holdout``)."""

    rows: int = 0
    with_image: int = 0
    first_feedback_at: str | None = None
    last_feedback_at: str | None = None
    model_versions: dict[str, int] = Field(default_factory=dict)
    per_class: dict[str, int] = Field(default_factory=dict)


class SliceManifest(BaseModel):
    """``manifest.json``: enough to trust, compare and reproduce a slice."""

    schema_version: int = SCHEMA_VERSION
    slice_id: str = Field(description="sha256 over every file's path and sha256 (16 hex).")
    since: str | None = None
    holdout_share: float
    rules: dict[str, str]
    counts: dict[str, int]
    train: PartSummary
    holdout: PartSummary
    issues: list[Issue] = Field(default_factory=list)
    files: dict[str, str] = Field(description="Relative path -> sha256 of every file.")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, encoding="utf-8", lineterminator="\n")  # the raw files' exact format


def _summary(rows: list[FeedbackRow]) -> PartSummary:
    versions: dict[str, int] = {}
    classes: dict[str, int] = {}
    for row in rows:
        versions[row.model_version] = versions.get(row.model_version, 0) + 1
        classes[str(row.prdtypecode)] = classes.get(str(row.prdtypecode), 0) + 1
    return PartSummary(
        rows=len(rows),
        with_image=sum(row.image is not None for row in rows),
        first_feedback_at=min(r.feedback_at for r in rows).isoformat() if rows else None,
        last_feedback_at=max(r.feedback_at for r in rows).isoformat() if rows else None,
        model_versions=dict(sorted(versions.items())),
        per_class=dict(sorted(classes.items(), key=lambda kv: int(kv[0]))),
    )


def _write_part(folder: Path, rows: list[FeedbackRow], *, holdout: bool) -> None:
    images = (
        folder
        / dataset.IMAGES_DIR
        / (dataset.TEST_IMAGES_DIR if holdout else dataset.TRAIN_IMAGES_DIR)
    )
    images.mkdir(parents=True)
    x = pd.DataFrame(
        {
            "designation": [r.designation for r in rows],
            "description": [r.description for r in rows],
            "productid": [r.productid for r in rows],
            "imageid": [r.imageid for r in rows],
        },
        columns=list(dataset.RAW_TEXT_COLUMNS),
    )
    y = pd.DataFrame({dataset.LABEL_COLUMN: [r.prdtypecode for r in rows]})
    provenance = pd.DataFrame(
        {
            "request_id": [r.request_id for r in rows],
            "feedback_at": [r.feedback_at.isoformat() for r in rows],
            "model_version": [r.model_version for r in rows],
            "predicted_prdtypecode": [r.predicted_prdtypecode for r in rows],
            "image_sha256": [r.image_sha256 for r in rows],
        }
    )
    x_name = dataset.X_TEST_FILE if holdout else dataset.X_TRAIN_FILE
    y_name = HOLDOUT_LABELS_FILE if holdout else dataset.Y_TRAIN_FILE
    _write_csv(x, folder / x_name)
    _write_csv(y, folder / y_name)
    _write_csv(provenance, folder / PROVENANCE_FILE)
    for row in rows:
        if row.image is not None:
            shutil.copyfile(row.image, images / dataset.image_filename(row.imageid, row.productid))


def write_slice(
    out: Path,
    *,
    train: list[FeedbackRow],
    holdout: list[FeedbackRow],
    since: str | None,
    holdout_share: float,
    rules: dict[str, str],
    counts: dict[str, int],
    issues: list[Issue],
) -> SliceManifest:
    """Write the slice to a temporary sibling of ``out``, then swap it in; returns its manifest."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_part(tmp / TRAIN_DIR, train, holdout=False)
        _write_part(tmp / HOLDOUT_DIR, holdout, holdout=True)
        files = {
            p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        listing = "".join(f"{path}\t{digest}\n" for path, digest in files.items())
        manifest = SliceManifest(
            slice_id=hashlib.sha256(listing.encode()).hexdigest()[:16],
            since=since,
            holdout_share=holdout_share,
            rules=rules,
            counts=counts,
            train=_summary(train),
            holdout=_summary(holdout),
            issues=issues,
            files=files,
        )
        (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", "utf-8")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def read_manifest(folder: Path) -> SliceManifest | None:
    """The slice's manifest; ``None`` when ``folder`` is absent or empty (no feedback yet).

    Raises:
        InvalidInputError: a folder with files but no readable manifest (not a slice).
    """
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return None
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise InvalidInputError(
            f"{folder} holds files but no {MANIFEST_FILE}: not a slice written by "
            "rakuten-data export-feedback"
        )
    try:
        return SliceManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise InvalidInputError(f"{path} is not a valid slice manifest: {exc}") from None


def verify_slice(folder: Path) -> SliceManifest | None:
    """Check every file of the slice against its manifest (and that nothing was added).

    Raises:
        InvalidInputError: a file missing, changed or not listed.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    found = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE
    }
    problems = [f"missing: {p}" for p in sorted(set(manifest.files) - found)]
    problems += [f"not in the manifest: {p}" for p in sorted(found - set(manifest.files))]
    problems += [
        f"changed: {p}"
        for p in sorted(set(manifest.files) & found)
        if _sha256(folder / p) != manifest.files[p]
    ]
    if problems:
        shown = "; ".join(problems[:5])
        raise InvalidInputError(
            f"{folder} does not match its manifest ({len(problems)} problems): {shown}"
        )
    return manifest
