"""The record tables: users, predictions and feedback, as serving writes them.

A contract, hence here: serving writes these rows (and owns the Alembic migrations that create
and upgrade the tables, ``rakuten_serve/migrations``; the schema is never made by
``create_all`` in production), the monitor reads predictions and feedback for drift and live
quality, and a retraining export reads feedback. ``docs/db-schema.md`` has the diagram.

``predictions.request_id`` is the primary key, which makes replaying spooled records
idempotent. ``feedback.request_id`` has no foreign key on purpose: feedback may arrive while its
prediction is still queued for writing. It is unique (migration 0005): the first answer on a
prediction is final, so a label can never be overwritten, not even by two answers at once.
The drift feature columns (``text_length``, ``has_description``, ``has_image``,
``image_brightness``) are nullable because rows written before migration 0002 lack them;
:func:`prediction_features` maps a row to the drift module's features.
``image_sha256`` names the image's file in serve's image store when it is on
(:mod:`rakuten_core.stored_images`; indexed since migration 0003), which is how the feedback
export finds the picture of a labelled prediction.
``shadow_predictions`` holds the challenger's answers to requests scored in shadow (serve's
``RAKUTEN_SHADOW_SHARE``), keyed by the same request id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rakuten_core.drift import ProductFeatures


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(200), default="predict")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class Prediction(Base):
    __tablename__ = "predictions"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100), index=True)
    designation: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    productid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    imageid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    image_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prdtypecode: Mapped[int] = mapped_column(Integer, index=True)
    probability: Mapped[float] = mapped_column(Float)
    top_k: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    text_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_description: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    has_image: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    image_brightness: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShadowPrediction(Base):
    """The challenger's answer to a request the champion answered (serve's shadow mode).

    One row per shadowed request, keyed like its ``predictions`` row (``request_id``, no foreign
    key: the two rows are written by different background writers, in either order). The
    champion's code and confidence are copied here so agreement is one table scan, and live
    accuracy of both models on the same requests is one join with ``feedback``.
    """

    __tablename__ = "shadow_predictions"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    champion_model_version: Mapped[str] = mapped_column(String(100))
    champion_prdtypecode: Mapped[int] = mapped_column(Integer)
    champion_probability: Mapped[float] = mapped_column(Float)
    challenger_model_name: Mapped[str] = mapped_column(String(100))
    challenger_model_version: Mapped[str] = mapped_column(String(100), index=True)
    challenger_prdtypecode: Mapped[int] = mapped_column(Integer)
    challenger_probability: Mapped[float] = mapped_column(Float)
    challenger_latency_ms: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    username: Mapped[str] = mapped_column(String(64))
    true_prdtypecode: Mapped[int] = mapped_column(Integer)
    predicted_prdtypecode: Mapped[int] = mapped_column(Integer)
    correct: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def feature_columns(features: ProductFeatures) -> dict[str, Any]:
    """The drift columns of a prediction row, from :func:`rakuten_core.drift.product_features`."""
    return {
        "text_length": features.text_length,
        "has_description": features.has_description,
        "has_image": features.has_image,
        "image_brightness": features.image_brightness,
    }


FEATURE_COLUMNS = (
    Prediction.prdtypecode,
    Prediction.probability,
    Prediction.text_length,
    Prediction.has_description,
    Prediction.has_image,
    Prediction.image_brightness,
)
"""The columns :func:`prediction_features` reads: select only these to read a window cheaply."""


def prediction_features(row: Any) -> ProductFeatures:
    """The drift features of a stored prediction (``None`` where the row predates them).

    ``row`` is a :class:`Prediction` or a result row of :data:`FEATURE_COLUMNS`.
    """
    return ProductFeatures(
        prdtypecode=row.prdtypecode,
        probability=row.probability,
        text_length=row.text_length,
        has_description=row.has_description,
        has_image=row.has_image,
        image_brightness=row.image_brightness,
    )
