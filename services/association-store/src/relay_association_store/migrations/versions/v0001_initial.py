"""Initial schema: recipes, orders, order items, processed events, deliveries.

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

ID = 128


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "recipes",
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("recipe_id", sa.String(ID), nullable=False),
        sa.Column("recipe_key", sa.String(512), nullable=False),
        sa.Column("temporary", sa.Boolean, nullable=False),
        _instant("created"),
        _instant("saved_at"),
        sa.PrimaryKeyConstraint("tenant", "recipe_id", name="pk_recipes"),
    )
    op.create_table(
        "orders",
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("order_id", sa.String(ID), nullable=False),
        sa.Column("order_number", sa.String(ID), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _instant("status_at", nullable=True),
        _instant("items_at", nullable=True),
        _instant("updated_at"),
        sa.PrimaryKeyConstraint("tenant", "order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_tenant_order_number", "orders", ["tenant", "order_number"])
    op.create_table(
        "order_items",
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("order_id", sa.String(ID), nullable=False),
        sa.Column("item_id", sa.String(ID), nullable=False),
        sa.Column("recipe_id", sa.String(ID), nullable=False),
        sa.Column("item_quantity", sa.Integer, nullable=False),
        _instant("occurred_at"),
        sa.PrimaryKeyConstraint("tenant", "order_id", "item_id", name="pk_order_items"),
        sa.ForeignKeyConstraint(
            ["tenant", "order_id"],
            ["orders.tenant", "orders.order_id"],
            name="fk_order_items_tenant_order_id_orders",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_order_items_tenant_recipe_id", "order_items", ["tenant", "recipe_id"])
    op.create_table(
        "processed_events",
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(ID), nullable=False),
        _instant("processed_at"),
        sa.PrimaryKeyConstraint("tenant", "kind", "event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(ID), nullable=False),
        sa.Column("tenant", sa.String(ID), nullable=False),
        sa.Column("integration_id", sa.String(ID), nullable=False),
        sa.Column("integration_type", sa.String(32), nullable=False),
        sa.Column("recipe_id", sa.String(ID), nullable=False),
        sa.Column("order_id", sa.String(ID), nullable=True),
        sa.Column("order_number", sa.String(ID), nullable=True),
        sa.Column("trigger_id", sa.String(ID), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("files", sa.JSON, nullable=False),
        _instant("updated_at"),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_tenant_order_id", "deliveries", ["tenant", "order_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("processed_events")
    op.drop_table("order_items")
    op.drop_table("orders")
    op.drop_table("recipes")
