"""Serve's Alembic migrations build exactly the tables rakuten_core.records defines."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from rakuten_core.records import Base
from rakuten_serve.db.migrate import alembic_config, current_revision, upgrade


def test_head_matches_the_core_tables_with_0002_columns_0003_index_0004_table(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
        assert "text_length" not in columns
        upgrade(url)
        assert current_revision(url) == "0004"
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
        assert {"text_length", "has_description", "has_image", "image_brightness"} <= columns
        indexes = {i["name"] for i in inspect(engine).get_indexes("predictions")}
        assert "ix_predictions_image_sha256" in indexes  # 0003
        assert "shadow_predictions" in inspect(engine).get_table_names()  # 0004
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
