"""Kafka topic names: the only place they are spelled."""

from typing import Final, Literal, get_args

IntegrationType = Literal["email", "sftp", "s3", "azure-blob", "zapier"]
INTEGRATION_TYPES: Final[tuple[IntegrationType, ...]] = get_args(IntegrationType)

RECIPES_SAVED: Final = "recipes.saved.v1"
ORDERS_EVENTS: Final = "orders.events.v1"
INTEGRATIONS_TRIGGERED: Final = "integrations.triggered.v1"
DELIVERIES_OUTCOMES: Final = "deliveries.outcomes.v1"
DELIVERIES_RETRY: Final = "deliveries.retry.v1"
DELIVERIES_DEAD: Final = "deliveries.dead.v1"
# Each integration's delivery state (active / paused), keyed by ``integration_key``: every deliverer replica reads
# it whole (no consumer group) to know which integrations to hold; the retry service releases what was held.
INTEGRATIONS_CONTROL: Final = "integrations.control.v1"


def deliveries_requested(integration_type: IntegrationType) -> str:
    """Topic that the deliverer of one destination type consumes."""
    return f"deliveries.requested.{integration_type}.v1"


OMS_TOPIC_PATTERN: Final = r"^[A-Za-z0-9._-]{1,249}$"


def oms_orders_topic(tenant: str) -> str:
    """The default topic one tenant's OMS publishes its order events to (``oms-topic`` in the tenant config).

    The tenant of an event read there is the topic's tenant, never the payload's: production grants each OMS
    principal WRITE on its own topic only (see ``deploy/kafka-acls.md``), so one tenant cannot write another's.
    """
    return f"oms.{tenant}.orders.v1"


ALL_TOPICS: Final[tuple[str, ...]] = (
    RECIPES_SAVED,
    ORDERS_EVENTS,
    INTEGRATIONS_TRIGGERED,
    *(deliveries_requested(t) for t in INTEGRATION_TYPES),
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    DELIVERIES_DEAD,
    INTEGRATIONS_CONTROL,
)

TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    # Compacted, never deleted by age: a deliverer that starts a year after a pause must still read it.
    INTEGRATIONS_CONTROL: {"cleanup.policy": "compact"},
}
"""Topic settings other than the broker's defaults, given when the topic is created."""
