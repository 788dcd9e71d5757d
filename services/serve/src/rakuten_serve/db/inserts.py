"""Inserts keyed by request id that skip the rows already there, settled by the database.

Two replicas can write the same request id at the same moment: the proxy retries a ``POST``
on the other replica when the first one died or failed while answering, with the same
``X-Request-ID``, and each replica records what it computed. A select-then-insert lets both
through the select, and then one batch fails on the primary key (to be spooled and replayed).
``INSERT ... ON CONFLICT (request_id) DO NOTHING`` makes the first write win and the second a
no-op, on PostgreSQL and on SQLite alike; ``RETURNING`` tells which rows were new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from rakuten_core.records import Prediction, ShadowPrediction


def insert_new(
    connection: Connection,
    table: type[Prediction] | type[ShadowPrediction],
    rows: Sequence[dict[str, Any]],
) -> set[str]:
    """Insert ``rows`` (all with the same columns) but those whose request id exists.

    Returns:
        The request ids inserted.

    Raises:
        ValueError: a database other than PostgreSQL or SQLite.
    """
    if not rows:
        return set()
    dialect = connection.dialect.name
    key = table.request_id
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
        returning = statement.returning(key)
    elif dialect == "sqlite":
        returning = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(key)
    else:
        raise ValueError(f"no idempotent insert for the {dialect} dialect")
    return set(connection.scalars(returning, list(rows)))
