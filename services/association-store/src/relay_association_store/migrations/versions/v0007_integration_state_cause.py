"""Destination health: why an integration's state last changed.

Revision ID: 0007
Revises: 0006

``integration_states.cause`` keeps the change's cause read on ``integrations.control.v1``: ``operator`` (the API,
the console), ``unhealthy`` (paused by the destination-health rules after consecutive failed attempts) or
``recovered`` (resumed after a probe delivery succeeded). Rows stored before this revision take the server default
``operator``, as only operators paused and resumed then; older replicas that insert without it get it too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("integration_states") as batch:
        batch.add_column(sa.Column("cause", sa.String(16), nullable=False, server_default="operator"))


def downgrade() -> None:
    with op.batch_alter_table("integration_states") as batch:
        batch.drop_column("cause")
