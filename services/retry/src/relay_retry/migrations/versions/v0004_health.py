"""Destination health: the table ``integration_health`` and ``integration_states.cause``.

Revision ID: 0004
Revises: 0003

``cause`` is not null with a server default of ``operator``: every state already stored was an operator's (nothing
else paused integrations before this revision), and replicas of the older version writing during a rolling upgrade
write only operators' changes too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _has_column(table: str, column: str) -> bool:
    return any(found["name"] == column for found in _inspector().get_columns(table))


def upgrade() -> None:
    # Each step only where it is missing: a database brought to this schema another way (from the table
    # definitions) is adopted as it is, like the earlier revisions do.
    if not _has_column("integration_states", "cause"):
        with op.batch_alter_table("integration_states") as batch:
            batch.add_column(sa.Column("cause", sa.String(16), nullable=False, server_default="operator"))
    if not _inspector().has_table("integration_health"):
        op.create_table(
            "integration_health",
            sa.Column("tenant", sa.String(ID), primary_key=True),
            sa.Column("integration_id", sa.String(ID), primary_key=True),
            sa.Column("consecutive_failures", sa.Integer, nullable=False),
            sa.Column("last_error", sa.String(200), nullable=True),
            sa.Column("unhealthy_since", sa.Float, nullable=True),
            sa.Column("probes", sa.Integer, nullable=False),
            sa.Column("next_probe_at", sa.Float, nullable=True),
            sa.Column("updated_at", sa.Float, nullable=False),
        )
        op.create_index("ix_integration_health_next_probe_at", "integration_health", ["next_probe_at"])


def downgrade() -> None:
    op.drop_index("ix_integration_health_next_probe_at", "integration_health")
    op.drop_table("integration_health")
    with op.batch_alter_table("integration_states") as batch:
        batch.drop_column("cause")
