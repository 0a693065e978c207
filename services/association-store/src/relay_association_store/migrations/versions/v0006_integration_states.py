"""Pause and resume: each integration's delivery state.

Revision ID: 0006
Revises: 0005

``integration_states`` keeps, per (tenant, integration), the newest change read on ``integrations.control.v1``
(active or paused, why, by whom, when). It starts empty: an integration without a row is active, as every one was
before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def _instant(name: str) -> sa.Column[object]:
    # As revision 0001 makes them: the adapter's UtcDateTime keeps them timezone-aware in Python.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "integration_states",
        sa.Column("tenant", sa.String(ID), primary_key=True),
        sa.Column("integration_id", sa.String(ID), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("changed_by", sa.String(200), nullable=True),
        _instant("changed_at"),
        sa.Column("event_id", sa.String(ID), nullable=False),
        _instant("recorded_at"),
    )


def downgrade() -> None:
    op.drop_table("integration_states")
