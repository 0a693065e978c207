"""The routing table: which topic reaches which use case in ``service``. The offset is committed after the handler
returns; errors follow the broker's taxonomy (``TransientError`` re-read, anything else dead-lettered).

Two consumers in the service's group: one for the order events (``orders.events.v1`` and every tenant's OMS
topic), one for the four topics only Recipe Relay's own services publish, with a typed handler per topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from relay_association_store import service
from relay_association_store.domain import accepted_at_of, order_event_from
from relay_association_store.ports import Publish, ServicePorts
from relay_association_store.settings import Settings
from relay_contracts.messages import (
    DeliveryAttempted,
    IntegrationStateChanged,
    IntegrationsTriggered,
    OmsOrderEvent,
    RecipeSaved,
)
from relay_contracts.topics import (
    DELIVERIES_OUTCOMES,
    INTEGRATIONS_CONTROL,
    INTEGRATIONS_TRIGGERED,
    ORDERS_EVENTS,
    RECIPES_SAVED,
)
from relay_platform.subscriber import Outgoing, on_topic, publish_all, subscribe, topic_of
from relay_platform.telemetry import current_traceparent

SERVICE_TITLE = "association-store"

Ports = Annotated[ServicePorts, Context("ports")]
Broker = Annotated[KafkaBroker, Context("broker")]

ORDER_EVENTS_DOC = """\
Order lifecycle events. `orders.events.v1` is written by ingest-api only (the tenant of its API caller); an OMS
publishes to its own tenant's topic (`oms-topic` in the tenant config, default `oms.<tenant>.orders.v1`), which
production locks down with Kafka ACLs (deploy/kafka-acls.md). The tenant of an event read there is the topic's:
`tenant` may be left out, and a payload naming another tenant is dead-lettered, never applied. Every item's
`recipeId` must be one of the tenant's recipes (its `recipe-prefix`), else the event is dead-lettered. Key by
`orderId` (ingest-api uses `tenant:orderId`) so one order's events stay in order. Only non-personal metadata is kept
(order ID/number, line item ID, recipe ID, quantity); any other field is dropped on decode. Safe to resend:
idempotent on `eventId` and on the business keys (tenant + orderId [+ itemId]). Send `occurredAt` from your own
database: an event older than the stored state never overwrites it. `type`: `linked` (items link recipes to line
items; order created as `open` if new), `created` (order open; `items` is the full item list), `updated` (`items`,
if given, replaces the item list), `cancelled`, `refunded`, `returned`. Malformed messages go to
`deliveries.dead.v1` with the reason."""

INTERNAL_DOC = f"""\
Topics only Recipe Relay's own services publish, read by one consumer with a typed handler per topic.
`{RECIPES_SAVED}` (RecipeSaved): record the recipe and fire the raw recipe feed of the tenant's integrations.
`{INTEGRATIONS_TRIGGERED}` (IntegrationsTriggered, from here or a manual trigger): a `pending` delivery-log row per
integration the tenant knows, before any outcome, so a delivery that never ends shows in the audit.
`{DELIVERIES_OUTCOMES}` (DeliveryAttempted): the delivery's latest outcome, shown by the order lookup.
`{INTEGRATIONS_CONTROL}` (IntegrationStateChanged): an integration paused or resumed; the newest `changedAt` per
integration is kept (a stale change is ignored) and shown with the integration stats.
Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(settings: Settings, oms_topics: Mapping[str, str] | None = None) -> KafkaRouter:
    """The consumers and the trigger publisher; their ports come from the app context (``main`` sets them).

    ``oms_topics`` maps each tenant's OMS topic to its tenant (``TenantsConfig.oms_topics``).
    """
    tenant_of_topic = dict(oms_topics or {})
    router = KafkaRouter()
    # The AsyncAPI entry of what the use cases publish (through ``publish_triggers``, inside their transaction).
    router.publisher(
        INTEGRATIONS_TRIGGERED,
        title=f"{INTEGRATIONS_TRIGGERED}:IntegrationsTriggered",
        description="These integrations of a tenant must receive this recipe's bundle; keyed by recipe ID.",
        schema=IntegrationsTriggered,
    )

    # One consumer for ingest-api's topic and every OMS topic: per-order order holds within each topic, and a
    # group member per topic would cost a rebalance each at every start.
    order_events = subscribe(
        router,
        ORDERS_EVENTS,
        *sorted(tenant_of_topic),
        kafka=settings.kafka,
        group_id=settings.consumer_group,
        title="order-events:OmsOrderEvent",
        description=ORDER_EVENTS_DOC,
    )

    @order_events
    async def on_order_event(event: OmsOrderEvent, message: KafkaMessage, ports: Ports, broker: Broker) -> None:
        # The topic says whose event it is: ingest-api's topic keeps the tenant it set, an OMS topic is its tenant's.
        occurred = order_event_from(topic_of(message), event, tenant_of_topic)
        await service.record_order_event(
            occurred,
            ports.tenants,
            ports.store,
            publish_triggers(broker),
            trace_parent=current_traceparent(),
            accepted_at=accepted_at_of(record_timestamp_ms(message)),
        )

    # The topics only Recipe Relay's own services publish share one consumer too: every group member joins (and
    # rebalances the group) on its own, which on Tansu costs seconds per member at each start.
    internal = subscribe(
        router,
        RECIPES_SAVED,
        INTEGRATIONS_TRIGGERED,
        DELIVERIES_OUTCOMES,
        INTEGRATIONS_CONTROL,
        kafka=settings.kafka,
        group_id=settings.consumer_group,
        title=f"{SERVICE_TITLE}:internal",
        description=INTERNAL_DOC,
    )

    @internal(filter=on_topic(RECIPES_SAVED))
    async def on_recipe_saved(event: RecipeSaved, message: KafkaMessage, ports: Ports, broker: Broker) -> None:
        await service.record_recipe_saved(
            event,
            ports.tenants,
            ports.store,
            publish_triggers(broker),
            accepted_at=accepted_at_of(record_timestamp_ms(message)),
        )

    @internal(filter=on_topic(INTEGRATIONS_TRIGGERED))
    async def on_integrations_triggered(trigger: IntegrationsTriggered, ports: Ports) -> None:
        await service.record_trigger(trigger, ports.tenants, ports.store)

    @internal(filter=on_topic(DELIVERIES_OUTCOMES))
    async def on_delivery_attempted(outcome: DeliveryAttempted, ports: Ports) -> None:
        await service.record_delivery_outcome(outcome, ports.store)

    @internal(filter=on_topic(INTEGRATIONS_CONTROL))
    async def on_integration_state_changed(change: IntegrationStateChanged, ports: Ports) -> None:
        await service.record_integration_state(change, ports.tenants, ports.store)

    return router


def record_timestamp_ms(message: KafkaMessage) -> int | None:
    """The consumed record's broker timestamp (ms since the epoch) as aiokafka's ``ConsumerRecord`` has it; ``None``
    when the raw message has none (a batch, or a test double)."""
    timestamp = getattr(message.raw_message, "timestamp", None)
    return timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None


def publish_triggers(broker: KafkaBroker) -> Publish:
    """The ``Publish`` port over ``broker``: triggers keyed by recipe ID, pipelined, each acknowledged."""

    async def publish(triggers: Sequence[IntegrationsTriggered]) -> None:
        await publish_all(
            broker, (Outgoing(INTEGRATIONS_TRIGGERED, trigger, key=trigger.recipe_id.encode()) for trigger in triggers)
        )

    return publish
