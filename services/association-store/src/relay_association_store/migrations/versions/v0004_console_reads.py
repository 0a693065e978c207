"""The console's reads: each delivery's attempt log, and the indexes of the newest-first lists.

Revision ID: 0004
Revises: 0003

``delivery_attempts`` keeps one row per outcome (a delivery, an attempt, a status): the attempt timeline. It starts
empty: deliveries recorded before this revision show their counters only. The indexes serve the recent orders
(``orders`` by tenant and last event), and the deliveries by last change (the failed list, the per-integration
counts).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

ID = 128


def _instant(name: str) -> sa.Column[object]:
    # As revision 0001 makes them: the adapter's UtcDateTime keeps them timezone-aware in Python.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "delivery_attempts",
        sa.Column("delivery_id", sa.String(ID), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("error_class", sa.String(200), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _instant("occurred_at"),
        _instant("recorded_at"),
    )
    op.create_index("ix_orders_tenant_updated_at", "orders", ["tenant", "updated_at", "order_id"])
    op.create_index("ix_deliveries_tenant_updated_at", "deliveries", ["tenant", "updated_at", "delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_tenant_updated_at", "deliveries")
    op.drop_index("ix_orders_tenant_updated_at", "orders")
    op.drop_table("delivery_attempts")
