"""Serve's records as the feedback export finds them: predictions, feedback, stored images.

Rows go in through ``rakuten_core.records`` (the tables serve writes) and images through the
layout of ``rakuten_core.stored_images``, so the export is tested on what serve produces; the
end-to-end test through the real app is ``tests/integration/test_feedback_loop.py``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from rakuten_core.records import Base, Feedback, Prediction
from rakuten_core.stored_images import stored_image_path

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def picture(seed: int, size: int = 48) -> bytes:
    """A distinct small JPEG per ``seed``."""
    buffer = io.BytesIO()
    color = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    Image.new("RGB", (size + seed % 7, size), color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Labelled:
    """One prediction and the feedback given on it."""

    request_id: str
    true_code: int
    minutes: float = 0.0  # feedback time after T0
    designation: str = "Piscine tubulaire ronde"
    description: str | None = "Avec pompe"
    productid: int | None = None
    imageid: int | None = None
    image: bytes | None = None
    predicted: int = 2583
    model_version: str = "3"
    username: str = "alice"


def create_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def add_labelled(url: str, rows: list[Labelled], store: Path | None = None) -> None:
    """Insert each prediction (if new) and its feedback; keep its image in ``store``."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            for row in rows:
                digest = hashlib.sha256(row.image).hexdigest() if row.image else None
                if session.get(Prediction, row.request_id) is None:
                    session.add(
                        Prediction(
                            request_id=row.request_id,
                            username=row.username,
                            created_at=T0 + timedelta(minutes=row.minutes) - timedelta(seconds=5),
                            model_name="rakuten-multimodal",
                            model_version=row.model_version,
                            designation=row.designation,
                            description=row.description,
                            productid=row.productid,
                            imageid=row.imageid,
                            image_sha256=digest,
                            image_bytes=len(row.image) if row.image else None,
                            prdtypecode=row.predicted,
                            probability=0.5,
                            top_k=[],
                            latency_ms=12.0,
                        )
                    )
                session.add(
                    Feedback(
                        request_id=row.request_id,
                        username=row.username,
                        true_prdtypecode=row.true_code,
                        predicted_prdtypecode=row.predicted,
                        correct=row.true_code == row.predicted,
                        created_at=T0 + timedelta(minutes=row.minutes),
                    )
                )
                if store is not None and row.image is not None and digest is not None:
                    path = stored_image_path(store, digest, "JPEG")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(row.image)
    finally:
        engine.dispose()
