"""Initial schema: the notices already sent.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Before alembic the notifier created this very table from its metadata at start-up. A database from then has
    # the table but no alembic_version: keep it (and its rows), and let alembic record this revision over it.
    if sa.inspect(op.get_bind()).has_table("sent_notices"):
        return
    op.create_table(
        "sent_notices",
        sa.Column("notice_id", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sent_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sent_notices")
