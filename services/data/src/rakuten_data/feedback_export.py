"""Serve's labelled feedback -> a training slice in the raw layout (``export-feedback``).

Reads every feedback row joined with its prediction (``rakuten_core.records``; SQLite or
Postgres through SQLAlchemy) and the image serve kept under the record's ``image_sha256``
(``rakuten_core.stored_images``). The rules (docs/data.md, "export-feedback"):

- **Unknown codes**: a true code outside the 27 categories is dropped (counted, reported).
- **A cap per user**: at most ``max_rows_per_user`` rows from any one user, their most recent
  (:mod:`rakuten_data.feedback_trust`; counted, reported, logged).
- **One row per product**: a product is its ``productid`` when the client sent one, otherwise
  its content (designation, description, image hash). A user's latest feedback stands for that
  user; when users disagree (or one user's latest feedbacks disagree at the same instant), the
  product is dropped. Feedback on the same product that agrees is merged into the latest row.
- **Ids**: a missing ``productid``/``imageid`` gets a deterministic id of at least
  :data:`SYNTHETIC_ID_BASE` (2**61, above every real Rakuten id) from the request id.
- **Images**: the stored image, else the copy in the previous slice (so feedback outlives the
  store's retention once exported), else the row is kept text-only, as the raw data keeps a
  product whose image is missing.
- **Holdout**: the most recent ``holdout_share`` of the rows (by feedback time, rounded half
  up) goes to ``holdout/``, never trained on.

The rows are then checked with :mod:`rakuten_data.validate` (ids, texts, duplicates, conflicting
labels across products), and every finding goes to the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session

from rakuten_core import dataset
from rakuten_core.categories import CODES
from rakuten_core.errors import InvalidInputError
from rakuten_core.records import Feedback, Prediction
from rakuten_core.stored_images import find_stored_image
from rakuten_data import validate
from rakuten_data.feedback_slice import (
    PROVENANCE_FILE,
    FeedbackRow,
    SliceManifest,
    write_slice,
)
from rakuten_data.feedback_trust import (
    DEFAULT_MAX_ROWS_PER_USER,
    cap_per_user,
    report_trust,
    resolve_conflicts,
)
from rakuten_data.report import Issue, issue

logger = logging.getLogger(__name__)

SYNTHETIC_ID_BASE = 2**61


def _user_cap_rule(max_rows: int | str) -> str:
    return f"at most {max_rows} feedback rows per user per export, the most recent"


RULES = {
    "unknown_code": "dropped",
    "same_product": "productid when sent, else designation + description + image sha256",
    "user_cap": _user_cap_rule("max_rows_per_user"),
    "conflict": "a user's latest feedback stands for that user; users who disagree, or one "
    "user's codes at the same instant, drop the product; users who agree give one row",
    "missing_image": "kept text-only (as the raw data keeps a product without its image)",
    "holdout": "the most recent holdout_share of rows by feedback time, never trained on",
}


def open_database(url: str) -> Engine:
    """An engine on ``url`` that holds serve's tables, or :class:`InvalidInputError`."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database or ""
            if path in ("", ":memory:") or not Path(path).is_file():
                raise InvalidInputError(f"SQLite database {path or '(memory)'} does not exist")
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise InvalidInputError(f"not a usable database URL: {type(exc).__name__}") from None
    tables = set(inspect(engine).get_table_names())
    if not {Feedback.__tablename__, Prediction.__tablename__} <= tables:
        engine.dispose()
        raise InvalidInputError(
            "the database has no predictions/feedback tables: is it serve's database "
            "(rakuten-serve db upgrade)?"
        )
    return engine


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _synthetic(key: str) -> int:
    return SYNTHETIC_ID_BASE + int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def _previous_images(out: Path) -> dict[str, Path]:
    """Image files of the slice already in ``out``, by sha256 (from its provenance files)."""
    found: dict[str, Path] = {}
    for provenance in sorted(out.glob(f"*/{PROVENANCE_FILE}")):
        part = provenance.parent
        x_file = part / dataset.X_TRAIN_FILE
        if not x_file.exists():
            x_file = part / dataset.X_TEST_FILE
        try:
            meta = pd.read_csv(provenance, index_col=0, dtype=str, keep_default_na=False)
            x = pd.read_csv(x_file, index_col=0, dtype=str, keep_default_na=False)
            rows = x.join(meta[["image_sha256"]], how="inner")
        except (OSError, ValueError, KeyError):
            continue  # not a slice of ours: nothing to reuse
        folders = list((part / dataset.IMAGES_DIR).glob("*"))
        for digest, imageid, productid in zip(
            rows["image_sha256"], rows["imageid"], rows["productid"], strict=True
        ):
            name = dataset.image_filename(int(imageid), int(productid))
            for folder in folders:
                if digest and (folder / name).is_file():
                    found[str(digest)] = folder / name
    return found


def read_feedback(engine: Engine, since: datetime | None) -> list[tuple[Feedback, Prediction]]:
    """Every feedback row with its prediction, oldest first."""
    query = (
        select(Feedback, Prediction)
        .join(Prediction, Prediction.request_id == Feedback.request_id)
        .order_by(Feedback.created_at, Feedback.id)
    )
    if since is not None:
        query = query.where(Feedback.created_at >= since)
    with Session(engine) as session:
        return [(row[0], row[1]) for row in session.execute(query)]


def _row(
    feedback: Feedback, prediction: Prediction, images: Path, previous: dict[str, Path]
) -> FeedbackRow:
    digest = prediction.image_sha256 or ""
    image = find_stored_image(images, digest) if digest else None
    if image is None and digest:
        image = previous.get(digest)
    rid = prediction.request_id
    return FeedbackRow(
        request_id=rid,
        username=feedback.username,
        feedback_at=_utc(feedback.created_at),
        designation=prediction.designation,
        description=prediction.description or "",
        productid=(
            prediction.productid
            if prediction.productid is not None
            else _synthetic(f"product:{rid}")
        ),
        imageid=(
            prediction.imageid if prediction.imageid is not None else _synthetic(f"image:{rid}")
        ),
        prdtypecode=feedback.true_prdtypecode,
        predicted_prdtypecode=prediction.prdtypecode,
        model_version=prediction.model_version,
        image_sha256=digest,
        image=image,
    )


def _validate(rows: list[FeedbackRow], issues: list[Issue]) -> None:
    """The raw data's checks on the exported rows (warnings: ids and codes are already valid)."""
    if not rows:
        return
    x = pd.DataFrame(
        {
            "designation": [r.designation for r in rows],
            "description": [r.description for r in rows],
            "productid": [str(r.productid) for r in rows],
            "imageid": [str(r.imageid) for r in rows],
        }
    )
    x = validate.check_products(x, issues)
    frame = x.assign(**{dataset.LABEL_COLUMN: [r.prdtypecode for r in rows]})
    validate.check_duplicates(frame, issues)


def export_feedback(
    engine: Engine,
    *,
    images_dir: Path,
    out: Path,
    since: datetime | None = None,
    holdout_share: float = 0.2,
    max_rows_per_user: int = DEFAULT_MAX_ROWS_PER_USER,
) -> SliceManifest:
    """Write the slice of every feedback (since ``since``) to ``out``; see the module docstring.

    Raises:
        InvalidInputError: impossible parameters or output path.
    """
    if not 0 <= holdout_share < 1:
        raise InvalidInputError(f"holdout share must be in [0, 1), got {holdout_share}")
    if max_rows_per_user < 1:
        raise InvalidInputError(f"max rows per user must be at least 1, got {max_rows_per_user}")
    if not images_dir.is_dir():
        raise InvalidInputError(f"image store folder {images_dir} does not exist")
    pairs = read_feedback(engine, since)
    previous = _previous_images(out) if out.is_dir() else {}
    issues: list[Issue] = []
    unknown = [(f, p) for f, p in pairs if f.true_prdtypecode not in CODES]
    if unknown:
        codes = sorted({f.true_prdtypecode for f, _ in unknown})
        issues.append(
            issue(
                "unknown_labels_dropped",
                f"{len(unknown)} feedback rows give codes outside the 27 categories; dropped",
                count=len(unknown),
                examples=[str(c) for c in codes],
            )
        )
    pairs = [(f, p) for f, p in pairs if f.true_prdtypecode in CODES]
    sent = {p.request_id: p.productid is not None for _, p in pairs}
    capped, over_cap = cap_per_user(
        [_row(f, p, images_dir, previous) for f, p in pairs], max_rows_per_user
    )
    rows, counts = resolve_conflicts(capped, sent)
    report_trust(over_cap, max_rows_per_user, counts, issues)
    _validate(rows, issues)
    n_holdout = math.floor(len(rows) * holdout_share + 0.5) if rows else 0
    train, holdout = rows[: len(rows) - n_holdout], rows[len(rows) - n_holdout :]
    counts = {
        "feedback_rows": len(pairs) + len(unknown),
        "unknown_code_dropped": len(unknown),
        "user_cap_dropped": sum(over_cap.values()),
        "users_capped": len(over_cap),
        **counts,
        "rows": len(rows),
        "without_image": sum(r.image is None for r in rows),
        "image_from_previous_slice": sum(
            r.image is not None and not r.image.is_relative_to(images_dir) for r in rows
        ),
    }
    manifest = write_slice(
        out,
        train=train,
        holdout=holdout,
        since=since.isoformat() if since else None,
        holdout_share=holdout_share,
        rules={**RULES, "user_cap": _user_cap_rule(max_rows_per_user)},
        counts=counts,
        issues=issues,
    )
    logger.info(
        "feedback slice %s: %d train and %d holdout rows from %d feedback rows",
        manifest.slice_id,
        len(train),
        len(holdout),
        counts["feedback_rows"],
    )
    return manifest
