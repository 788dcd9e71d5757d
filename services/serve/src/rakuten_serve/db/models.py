"""Tables of the serving database (the schema is created by Alembic, never by ``create_all``).

See ``docs/db-schema.md`` for the diagram. ``predictions.request_id`` is the primary key, which
makes replaying spooled records idempotent. ``feedback.request_id`` has no foreign key on
purpose: feedback may arrive while its prediction is still queued for writing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prdtypecode: Mapped[int] = mapped_column(Integer, index=True)
    probability: Mapped[float] = mapped_column(Float)
    top_k: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64))
    true_prdtypecode: Mapped[int] = mapped_column(Integer)
    predicted_prdtypecode: Mapped[int] = mapped_column(Integer)
    correct: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
