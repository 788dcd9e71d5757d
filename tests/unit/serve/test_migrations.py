"""Serve's Alembic migrations build exactly the tables rakuten_core.records defines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rakuten_core.records import Base, Feedback
from rakuten_serve.db.migrate import alembic_config, current_revision, upgrade


def test_head_matches_the_core_tables_with_0002_columns_0003_index_0004_table_0005_unique(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
        assert "text_length" not in columns
        upgrade(url)
        assert current_revision(url) == "0005"
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
        assert {"text_length", "has_description", "has_image", "image_brightness"} <= columns
        indexes = {i["name"] for i in inspect(engine).get_indexes("predictions")}
        assert "ix_predictions_image_sha256" in indexes  # 0003
        assert "shadow_predictions" in inspect(engine).get_table_names()  # 0004
        assert _feedback_index(engine)["unique"]  # 0005
    finally:
        engine.dispose()


def _feedback_index(engine: Engine) -> dict[str, object]:
    indexes = inspect(engine).get_indexes("feedback")
    [index] = [i for i in indexes if i["name"] == "ix_feedback_request_id"]
    return dict(index)


def _answer(rid: str, username: str, code: int, minutes: int) -> Feedback:
    return Feedback(
        request_id=rid,
        username=username,
        true_prdtypecode=code,
        predicted_prdtypecode=10,
        correct=code == 10,
        created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )


def test_0005_keeps_the_first_answer_of_each_prediction_and_refuses_a_second(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url, "0004")
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            # before 0005 a user's answer was updated in place and an admin's sat beside it
            session.add(_answer("r1", "alice", 10, minutes=5))
            session.add(_answer("r1", "root", 2280, minutes=1))
            session.add(_answer("r2", "bob", 50, minutes=2))
        upgrade(url)
        assert current_revision(url) == "0005"
        with Session(engine) as session:
            kept = {
                (f.request_id, f.username, f.true_prdtypecode)
                for f in session.scalars(select(Feedback))
            }
        assert kept == {("r1", "alice", 10), ("r2", "bob", 50)}  # the lowest id: first recorded
        with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
            session.add(_answer("r2", "mallory", 10, minutes=9))
        command.downgrade(alembic_config(url), "0004")
        assert not _feedback_index(engine)["unique"]
    finally:
        engine.dispose()


def test_0004_then_0003_downgrade_to_0002(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    try:
        assert current_revision(url) == "0002"
        assert "shadow_predictions" not in inspect(engine).get_table_names()
        indexes = {i["name"] for i in inspect(engine).get_indexes("predictions")}
        assert "ix_predictions_image_sha256" not in indexes
        assert "ix_predictions_created_at" in indexes
    finally:
        engine.dispose()
