"""The retry schedule's tables (created and changed by the alembic scripts in ``relay_retry.migrations``)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, false

metadata = MetaData()

# A W3C traceparent of version 00 is 55 characters.
TRACE_PARENT_MAX = 55

scheduled_retries = Table(
    "scheduled_retries",
    metadata,
    Column("delivery_id", String(128), primary_key=True),
    # The attempt number the re-published request carries (2 = first retry).
    Column("attempt", Integer, primary_key=True),
    Column("tenant", String(128), nullable=False),
    # Set for order deliveries, so a cancelled order drops its pending retries.
    Column("order_id", String(128), nullable=True),
    Column("integration_type", String(32), nullable=False),
    Column("recipe_id", String(128), nullable=False),
    # Seconds since the epoch (UTC): compared and ordered the same way on every database.
    Column("due_at", Float, nullable=False),
    Column("request_json", Text, nullable=False),
    # When the row was stored; for a held row, when its delivery was accepted (the order held rows go out in).
    Column("created_at", Float, nullable=False),
    # The W3C traceparent of the failed attempt's retry command: the re-request is published in that trace.
    # Nullable: rows stored before revision 0002, or outside any trace.
    Column("trace_parent", String(TRACE_PARENT_MAX), nullable=True),
    # A request its deliverer did not attempt because the integration is paused: never due until the integration
    # is resumed (revision 0003). The server default keeps rows of older versions, and of replicas of them still
    # writing during a rolling upgrade, schedulable.
    Column("held", Boolean, nullable=False, server_default=false()),
    # The request's integration, so a resume finds its held rows. Nullable: rows stored before revision 0003.
    Column("integration_id", String(128), nullable=True),
    Index("ix_scheduled_retries_due_at", "due_at"),
    Index("ix_scheduled_retries_order", "tenant", "order_id"),
    Index("ix_scheduled_retries_integration", "tenant", "integration_id"),
)

# Each order's status and the `occurredAt` that set it (ISO 8601 with its own offset: exact, and any offset an
# OMS may send survives, where a UTC conversion could overflow at year 1 or 9999). Compared in Python, by the
# association store's rule (`domain.order_status_after`); `updated_at` is wall-clock time, for pruning.
order_states = Table(
    "order_states",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("order_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("status_at", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Each integration's state (active / paused) and the `changedAt` that set it (ISO 8601 with its own offset, as
# `order_states.status_at`), from `integrations.control.v1`; a change older than the stored one is ignored
# (`domain.integration_state_after`). No row: no change read yet, which holds a paused request until one is.
integration_states = Table(
    "integration_states",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("integration_id", String(128), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("changed_at", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
    # Who made the change: operator, unhealthy or recovered (revision 0004). The server default reads rows of older
    # versions as an operator's, which they were.
    Column("cause", String(16), nullable=False, server_default="operator"),
)

# Destination health (revision 0004), for integrations whose tenant config asks for it: consecutive transient
# failed attempts, and while the health rules hold the integration paused as unhealthy, since when and when the
# next probe is due. Times are seconds since the epoch (UTC), compared in SQL like `scheduled_retries.due_at`.
integration_health = Table(
    "integration_health",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("integration_id", String(128), primary_key=True),
    Column("consecutive_failures", Integer, nullable=False),
    # Scrubbed of secrets, like every error the deliverers publish.
    Column("last_error", String(200), nullable=True),
    Column("unhealthy_since", Float, nullable=True),
    Column("probes", Integer, nullable=False),
    Column("next_probe_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Index("ix_integration_health_next_probe_at", "next_probe_at"),
)

# The table older versions kept (cancelled orders only, stamped with the wall-clock time the cancellation was
# read). Not created any more, so not in ``metadata``; where it exists its rows still count as cancellations, so
# an upgrade does not forget one. Left in place: replicas of the older version may still be writing it during a
# rolling upgrade.
legacy_metadata = MetaData()
legacy_cancelled_orders = Table(
    "cancelled_orders",
    legacy_metadata,
    Column("tenant", String(128), primary_key=True),
    Column("order_id", String(128), primary_key=True),
    Column("cancelled_at", Float, nullable=False),
)
