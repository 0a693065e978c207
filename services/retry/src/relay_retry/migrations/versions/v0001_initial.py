"""Initial schema: the scheduled retries and each order's status.

Revision ID: 0001
Revises:

Versions before the migrations made these tables at start-up from the table definitions, without alembic: a
database of theirs has both tables (with their indexes) but no ``alembic_version``. Each table is therefore made
only where it is missing, so such a database is adopted as it is (then stamped 0001) instead of failing with
"table already exists"; the schema made here is the very one those versions made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("scheduled_retries"):
        op.create_table(
            "scheduled_retries",
            sa.Column("delivery_id", sa.String(ID), primary_key=True),
            sa.Column("attempt", sa.Integer, primary_key=True),
            sa.Column("tenant", sa.String(ID), nullable=False),
            sa.Column("order_id", sa.String(ID), nullable=True),
            sa.Column("integration_type", sa.String(32), nullable=False),
            sa.Column("recipe_id", sa.String(ID), nullable=False),
            sa.Column("due_at", sa.Float, nullable=False),
            sa.Column("request_json", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        op.create_index("ix_scheduled_retries_due_at", "scheduled_retries", ["due_at"])
        op.create_index("ix_scheduled_retries_order", "scheduled_retries", ["tenant", "order_id"])
    if _missing("order_states"):
        op.create_table(
            "order_states",
            sa.Column("tenant", sa.String(ID), primary_key=True),
            sa.Column("order_id", sa.String(ID), primary_key=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("status_at", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("order_states")
    op.drop_table("scheduled_retries")
