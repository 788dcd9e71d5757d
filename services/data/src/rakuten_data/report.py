"""The data report written next to the prepared tables (``data_report.json``).

It is what a reviewer reads to trust a training set: where it came from (raw dir, a fingerprint
of the input files, seed and split sizes), what was wrong with it (issues with examples) and how
the classes ended up spread across the splits. It holds no timestamp, so preparing the same
inputs twice gives the same file (DVC sees no change).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_VERSION = 1
MAX_EXAMPLES = 5

Severity = Literal["error", "warning"]


class Issue(BaseModel):
    """One kind of problem found in the raw data, with a few examples."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable machine-readable name, e.g. 'missing_image'.")
    severity: Severity = Field(description="'error' stops preparation; 'warning' is reported.")
    message: str
    file: str | None = None
    count: int = Field(default=1, ge=0)
    examples: list[str] = Field(default_factory=list, max_length=MAX_EXAMPLES)


class FileDigest(BaseModel):
    """Content hash of one input file."""

    path: str
    bytes: int
    sha256: str


class ImageSummary(BaseModel):
    """What happened to the training images."""

    present: int = 0
    missing: int = 0
    unreadable: int = 0
    sha256: str = Field(default="", description="sha256 over the readable images' hashes.")


class SplitSummary(BaseModel):
    """Rows of one split, per class (keys are prdtypecodes as strings, JSON-friendly)."""

    rows: int
    with_image: int
    per_class: dict[str, int]


class FeedbackSummary(BaseModel):
    """What ``prepare --feedback`` took from a feedback slice (train and val only)."""

    dir: str
    slice_id: str
    slice_rows: int = Field(description="Training rows in the slice (its holdout never comes).")
    dropped_in_test: int = Field(description="Rows describing a product of the test split.")
    train: int
    val: int
    images_sha256: str = ""


class DataReport(BaseModel):
    """Everything ``prepare`` learnt about the raw data and what it wrote."""

    schema_version: int = REPORT_SCHEMA_VERSION
    status: Literal["ok", "failed"] = "ok"
    raw_dir: str
    seed: int
    val_size: float
    test_size: float
    fingerprint: str = Field(default="", description="sha256 over all input files' contents.")
    inputs: list[FileDigest] = Field(default_factory=list)
    images: ImageSummary = Field(default_factory=ImageSummary)
    raw_rows: int = 0
    rows: int = Field(default=0, description="Rows kept in the prepared tables.")
    class_counts: dict[str, int] = Field(default_factory=dict)
    splits: dict[str, SplitSummary] = Field(default_factory=dict)
    issues: list[Issue] = Field(default_factory=list)
    feedback: FeedbackSummary | None = Field(
        default=None, description="Absent without feedback (the report is then as before)."
    )

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def write(self, path: Path) -> None:
        """Write the report as indented JSON (stable key order, trailing newline)."""
        exclude = {"feedback"} if self.feedback is None else None
        path.write_text(self.model_dump_json(indent=2, exclude=exclude) + "\n", encoding="utf-8")


def issue(
    code: str,
    message: str,
    *,
    severity: Severity = "warning",
    file: str | None = None,
    count: int = 1,
    examples: list[str] | tuple[str, ...] = (),
) -> Issue:
    """An :class:`Issue` with its examples cut to :data:`MAX_EXAMPLES`."""
    return Issue(
        code=code,
        severity=severity,
        message=message,
        file=file,
        count=count,
        examples=[str(e)[:200] for e in list(examples)[:MAX_EXAMPLES]],
    )
