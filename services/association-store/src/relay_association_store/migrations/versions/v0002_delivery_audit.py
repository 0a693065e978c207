"""Delivery audit: when each delivery was first recorded and triggered, and an index for unfinished ones.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

INDEX = "ix_deliveries_tenant_final_updated_at"


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table to make a column NOT NULL; PostgreSQL just alters it.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True))
    # Rows written before this revision came from outcomes; their last change is the only instant they hold.
    op.execute(sa.text("UPDATE deliveries SET created_at = updated_at WHERE created_at IS NULL"))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(INDEX, "deliveries", ["tenant", "final", "updated_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("triggered_at")
        batch.drop_column("created_at")
