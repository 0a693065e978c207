"""SQL schema (SQLAlchemy Core); alembic migrations under ``relay_association_store/migrations`` create it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

ID = 128

metadata = sa.MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python everywhere; SQLite keeps naive UTC text, PostgreSQL ``timestamptz``."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; every stored instant must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


recipes = sa.Table(
    "recipes",
    metadata,
    sa.Column("tenant", sa.String(ID), primary_key=True),
    sa.Column("recipe_id", sa.String(ID), primary_key=True),
    sa.Column("recipe_key", sa.String(512), nullable=False),
    sa.Column("temporary", sa.Boolean, nullable=False),
    sa.Column("created", UtcDateTime, nullable=False),
    sa.Column("saved_at", UtcDateTime, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("tenant", sa.String(ID), primary_key=True),
    sa.Column("order_id", sa.String(ID), primary_key=True),
    sa.Column("order_number", sa.String(ID), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_at", UtcDateTime, nullable=True),
    sa.Column("items_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # The W3C traceparent of the trace the order was first recorded in (null when unknown); never overwritten.
    sa.Column("trace_parent", sa.String(55), nullable=True),
    sa.Index("ix_orders_tenant_order_number", "tenant", "order_number"),
    # The recent orders, newest first (revision 0004).
    sa.Index("ix_orders_tenant_updated_at", "tenant", "updated_at", "order_id"),
)

order_items = sa.Table(
    "order_items",
    metadata,
    sa.Column("tenant", sa.String(ID), primary_key=True),
    sa.Column("order_id", sa.String(ID), primary_key=True),
    sa.Column("item_id", sa.String(ID), primary_key=True),
    sa.Column("recipe_id", sa.String(ID), nullable=False),
    sa.Column("item_quantity", sa.Integer, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.ForeignKeyConstraint(["tenant", "order_id"], ["orders.tenant", "orders.order_id"], ondelete="CASCADE"),
    sa.Index("ix_order_items_tenant_recipe_id", "tenant", "recipe_id"),
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("tenant", sa.String(ID), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("event_id", sa.String(ID), primary_key=True),
    sa.Column("processed_at", UtcDateTime, nullable=False),
    sa.Index("ix_processed_events_processed_at", "processed_at"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(ID), primary_key=True),
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
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("triggered_at", UtcDateTime, nullable=True),
    # The order line it was made for (revision 0005; null before it, and for the raw recipe feed).
    sa.Column("item_id", sa.String(ID), nullable=True),
    # The trigger ID of the bulk replay that re-sent this final failure (revision 0005); null when not replayed.
    sa.Column("replayed_by", sa.String(ID), nullable=True),
    sa.Index("ix_deliveries_tenant_order_id", "tenant", "order_id"),
    # The audit: a tenant's unfinished deliveries by last change.
    sa.Index("ix_deliveries_tenant_final_updated_at", "tenant", "final", "updated_at"),
    # The newest-first delivery lists and the per-integration counts (revision 0004).
    sa.Index("ix_deliveries_tenant_updated_at", "tenant", "updated_at", "delivery_id"),
)

# One row per outcome: the delivery's attempt timeline. A redelivered outcome adds nothing (primary key); the retry
# service's give-up for attempt N is a row of its own beside the deliverer's `retrying` for N.
delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("delivery_id", sa.String(ID), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("tenant", sa.String(ID), nullable=False),
    sa.Column("error_class", sa.String(200), nullable=True),
    # Scrubbed of secrets (``domain.attempt_of``), at most 2000 characters.
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

# Each integration's delivery state, as last paused or resumed (revisions 0006, 0007): the newest ``changed_at`` per
# integration is kept; an integration without a row is active.
integration_states = sa.Table(
    "integration_states",
    metadata,
    sa.Column("tenant", sa.String(ID), primary_key=True),
    sa.Column("integration_id", sa.String(ID), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("changed_by", sa.String(200), nullable=True),
    sa.Column("changed_at", UtcDateTime, nullable=False),
    sa.Column("event_id", sa.String(ID), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    # Revision 0007: operator, unhealthy or recovered; rows from before read as operator (the server default).
    sa.Column("cause", sa.String(16), nullable=False, server_default="operator"),
)
