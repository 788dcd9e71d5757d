"""predictions: drift feature columns (text_length, has_description, has_image, image_brightness)

Nullable: rows written before this revision have no features, and the monitor skips them
feature by feature.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("text_length", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("has_description", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("has_image", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("image_brightness", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("image_brightness")
        batch.drop_column("has_image")
        batch.drop_column("has_description")
        batch.drop_column("text_length")
