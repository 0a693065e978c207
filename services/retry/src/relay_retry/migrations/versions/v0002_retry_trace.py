"""The scheduled retry's trace: ``scheduled_retries.trace_parent``.

Revision ID: 0002
Revises: 0001

A nullable column, so rows stored by older versions (and replicas of them still running during a rolling
upgrade, which do not write it) stay valid: their retries are simply published in a new trace.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _has_column(table: str, column: str) -> bool:
    return any(found["name"] == column for found in sa.inspect(op.get_bind()).get_columns(table))


def upgrade() -> None:
    if _has_column("scheduled_retries", "trace_parent"):
        return  # a database brought to this schema another way (from the table definitions): nothing to add
    # batch_alter_table: SQLite cannot ALTER every kind of column change in place (an ADD COLUMN it can, but the
    # downgrade's DROP COLUMN needs the table copy on older SQLite versions).
    with op.batch_alter_table("scheduled_retries") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_retries") as batch:
        batch.drop_column("trace_parent")
