"""Bulk replay: which order line a delivery was made for, and the replay that re-triggered it.

Revision ID: 0005
Revises: 0004

``deliveries.item_id`` lets a replay re-trigger the very line (null for rows recorded before: the replay then names
the order only). ``deliveries.replayed_by`` is the trigger ID of the replay that re-sent a final failure, so a second
replay of the same window leaves it out. Both nullable: older replicas keep writing rows without them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("item_id", sa.String(ID), nullable=True))
        batch.add_column(sa.Column("replayed_by", sa.String(ID), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("replayed_by")
        batch.drop_column("item_id")
