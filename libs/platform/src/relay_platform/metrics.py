"""Every Prometheus metric of Recipe Relay, defined once here (prometheus-client's default registry).

Defined at module level, once per process: tests run many apps in one process, and registering a metric twice
raises. So every metric a service reports is labelled by ``service`` where several services count the same thing,
and ``/metrics`` (``relay_platform.ops``) serves the default registry.

The names are an interface: the Grafana dashboard and the KEDA lag trigger query exactly these. Labels are bounded
and carry nothing personal or secret: never a tenant secret, API key, recipe/order/delivery ID or e-mail address,
and no integration ID (one per tenant destination: unbounded). ``topic`` is bounded by the topics a service
subscribes to (a tenant's OMS topic names its tenant, which is fine: tenants are few and not secret).
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

FailureKind = Literal["transient", "permanent"]
AttemptOutcome = Literal["succeeded", "retrying", "failed"]

# --- every Kafka consumer (the broker's error middleware, relay_platform.broker) ----------------------------------

# Throughput per topic; a re-read of a transiently failed message counts again (it was consumed again).
MESSAGES_CONSUMED: Final = Counter(
    "relay_messages_consumed_total", "Messages handed to a handler.", ["service", "topic"]
)
# Error rate per topic and kind: transient failures are re-read, permanent ones dead-lettered at once.
MESSAGES_FAILED: Final = Counter(
    "relay_messages_failed_total", "Handler failures, by taxonomy kind.", ["service", "topic", "kind"]
)
# Messages given up on: each one is work an operator has to look at (`relay dlq`).
MESSAGES_DEAD_LETTERED: Final = Counter(
    "relay_messages_dead_lettered_total", "Messages parked on deliveries.dead.v1.", ["service", "topic"]
)
# Backlog per group and partition: what the deliverers' autoscaling (KEDA) and the lag panel read. Computed at
# scrape time from each running consumer's local state (highwater - position), never from committed offsets:
# on the durable broker every committed() is an object-store read.
CONSUMER_LAG: Final = Gauge(
    "relay_consumer_lag",
    "Records not yet read, per assigned partition.",
    ["service", "group", "topic", "partition"],
)

# --- deliverers (relay_delivery.service, where an attempt ends) ---------------------------------------------------

# Deliveries per destination type and outcome: the dashboard's deliveries and failure-rate panels.
DELIVERY_ATTEMPTS: Final = Counter(
    "relay_delivery_attempts_total",
    "Delivery attempts, by destination type and outcome.",
    ["integration_type", "outcome"],
)
# How long one attempt takes (file reads and the destination call): slow destinations show up here first.
DELIVERY_DURATION: Final = Histogram(
    "relay_delivery_duration_seconds",
    "Duration of one delivery attempt.",
    ["integration_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 180),
)
# Requests not attempted because their integration is paused (handed to the retry service to keep until a resume).
DELIVERIES_HELD: Final = Counter(
    "relay_deliveries_held_total",
    "Delivery requests held, not attempted, because their integration is paused; by destination type.",
    ["integration_type"],
)
# The latency customers feel: from when the suite accepted the order (DeliverBundle.accepted_at: the broker time of
# the order event's record, or a manual trigger's time; kept across retries) to the successful attempt; bundle
# build, queueing and retries' back-off included. Requests without accepted_at count from requested_at instead.
ORDER_TO_DELIVERED: Final = Histogram(
    "relay_order_to_delivered_seconds",
    "From the order's acceptance to its successful delivery (order feeds).",
    ["integration_type"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)

# --- retry service -------------------------------------------------------------------------------------------------

# Deliveries waiting for their next attempt, held ones of paused integrations included: a growing backlog is a
# destination down (or the scheduler stuck), or an integration left paused.
RETRY_BACKLOG: Final = Gauge("relay_retry_backlog", "Deliveries waiting in the retry schedule.")
# How many integrations the destination-health rules hold paused as unhealthy right now (no labels: the IDs are
# customer data; the console's Integrations page names them).
INTEGRATIONS_UNHEALTHY: Final = Gauge(
    "relay_integrations_unhealthy", "Integrations paused as unhealthy by the destination-health rules."
)

# --- bundle-builder --------------------------------------------------------------------------------------------------

# Time to build one bundle (asset fetches, render, store): the first hop of every delivery's latency.
BUNDLE_BUILD_SECONDS: Final = Histogram(
    "relay_bundle_build_seconds",
    "Time to build one recipe bundle.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# --- ingest-api (its middleware) -------------------------------------------------------------------------------------

# Rate and status per route; `route` is the route template (/api/v2/recipe/order), never the raw path, whose IDs
# would explode the series and could carry customer data.
HTTP_REQUESTS: Final = Counter(
    "relay_http_requests_total", "HTTP requests answered.", ["service", "route", "method", "status"]
)
# Latency per route: the ingest API's 5 s client budget is checked against this.
HTTP_REQUEST_DURATION: Final = Histogram(
    "relay_http_request_duration_seconds", "HTTP request duration.", ["service", "route"]
)
