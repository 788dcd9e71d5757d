"""shadow_predictions: the challenger's answers to requests scored in shadow

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_predictions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("champion_model_version", sa.String(100), nullable=False),
        sa.Column("champion_prdtypecode", sa.Integer(), nullable=False),
        sa.Column("champion_probability", sa.Float(), nullable=False),
        sa.Column("challenger_model_name", sa.String(100), nullable=False),
        sa.Column("challenger_model_version", sa.String(100), nullable=False),
        sa.Column("challenger_prdtypecode", sa.Integer(), nullable=False),
        sa.Column("challenger_probability", sa.Float(), nullable=False),
        sa.Column("challenger_latency_ms", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_shadow_predictions_created_at", "shadow_predictions", ["created_at"], unique=False
    )
    op.create_index(
        "ix_shadow_predictions_challenger_model_version",
        "shadow_predictions",
        ["challenger_model_version"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_shadow_predictions_challenger_model_version", "shadow_predictions")
    op.drop_index("ix_shadow_predictions_created_at", "shadow_predictions")
    op.drop_table("shadow_predictions")
