"""feedback: one answer per prediction (a unique index on request_id)

The first feedback on a prediction is final (``POST /feedback`` answers 409 to the next one);
the unique index keeps that true when two answers arrive at the same time. Until now a user's
second answer replaced their first and an admin could add a row beside the owner's, so a
database may hold several rows for one request id: the upgrade keeps the oldest row of each
(the lowest id, the first answer recorded) and deletes the others.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM feedback WHERE id NOT IN "
            "(SELECT MIN(id) FROM feedback GROUP BY request_id)"
        )
    )
    op.drop_index("ix_feedback_request_id", table_name="feedback")
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_feedback_request_id", table_name="feedback")
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"], unique=False)
