"""Held requests of paused integrations: ``scheduled_retries.held`` and ``.integration_id``, and the table
``integration_states``.

Revision ID: 0003
Revises: 0002

``held`` is not null with a server default of false, so every row already stored (and every row a replica of the
older version writes during a rolling upgrade) stays an ordinary retry. ``integration_id`` is nullable: older rows
do not have it, and none of them is held.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _has_column(table: str, column: str) -> bool:
    return any(found["name"] == column for found in _inspector().get_columns(table))


def upgrade() -> None:
    # Each step only where it is missing: a database brought to this schema another way (from the table
    # definitions) is adopted as it is, like revisions 0001 and 0002 do.
    if not _has_column("scheduled_retries", "held"):
        # batch_alter_table: on SQLite the downgrade's DROP COLUMN needs the table copy (older SQLite versions).
        with op.batch_alter_table("scheduled_retries") as batch:
            batch.add_column(sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()))
            batch.add_column(sa.Column("integration_id", sa.String(ID), nullable=True))
    indexes = {index["name"] for index in _inspector().get_indexes("scheduled_retries")}
    if "ix_scheduled_retries_integration" not in indexes:
        op.create_index("ix_scheduled_retries_integration", "scheduled_retries", ["tenant", "integration_id"])
    if not _inspector().has_table("integration_states"):
        op.create_table(
            "integration_states",
            sa.Column("tenant", sa.String(ID), primary_key=True),
            sa.Column("integration_id", sa.String(ID), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("changed_at", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("integration_states")
    op.drop_index("ix_scheduled_retries_integration", "scheduled_retries")
    with op.batch_alter_table("scheduled_retries") as batch:
        batch.drop_column("integration_id")
        batch.drop_column("held")
