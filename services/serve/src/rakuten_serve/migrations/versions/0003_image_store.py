"""predictions: index on image_sha256, the key of serve's image store

``image_sha256`` (nullable, since 0001) is the name of the image's file in the image store
(``RAKUTEN_IMAGE_STORE_DIR``, ``rakuten_core.stored_images``). The index answers "which
predictions sent this image?" without a table scan, which a privacy request about one picture
needs (who sent it, when; docs/serving.md "Image store").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_image_sha256", "predictions", ["image_sha256"])


def downgrade() -> None:
    op.drop_index("ix_predictions_image_sha256", table_name="predictions")
