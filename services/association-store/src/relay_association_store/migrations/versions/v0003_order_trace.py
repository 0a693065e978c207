"""Order trace: the W3C ``traceparent`` of the trace an order was first recorded in, for a re-trigger to link to.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable, no default: orders recorded before this revision have no known trace (no link is made for them).
    # Batch mode keeps the SQLite path the same as v0002's; PostgreSQL just adds the column.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trace_parent")
