"""Serve's Alembic migrations build exactly the tables rakuten_core.records defines."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from rakuten_core.records import Base
from rakuten_serve.db.migrate import current_revision, upgrade


def test_head_matches_the_core_tables_and_0002_adds_the_drift_columns(tmp_path: Path) -> None:
    """0004 (shadow_predictions) follows 0002 in this branch; the merge re-chains it after 0003."""
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
        assert "shadow_predictions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
