"""Kafka subscribers: decode, call the service, publish. The offset is committed after the handler returns."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Annotated

from aiokafka.errors import KafkaError
from faststream import Context
from faststream.kafka import KafkaMessage, KafkaRouter
from faststream.middlewares import AckPolicy

from relay_association_store import service
from relay_association_store.adapters.repository import SqlStore
from relay_contracts.messages import DeliveryAttempted, IntegrationsTriggered, OmsOrderEvent, RecipeSaved
from relay_contracts.topics import DELIVERIES_OUTCOMES, INTEGRATIONS_TRIGGERED, ORDERS_EVENTS, RECIPES_SAVED
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import TenantsConfig

GROUP = "association-store"
SERVICE_TITLE = "association-store"

Store = Annotated[SqlStore, Context("store")]
Tenants = Annotated[TenantsConfig, Context("tenants")]

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
Topics only Recipe Relay's own services publish, read by one consumer and decoded by topic.
`{RECIPES_SAVED}` (RecipeSaved): record the recipe and fire the raw recipe feed of the tenant's integrations.
`{INTEGRATIONS_TRIGGERED}` (IntegrationsTriggered, from here or a manual trigger): a `pending` delivery-log row per
integration the tenant knows, before any outcome, so a delivery that never ends shows in the audit.
`{DELIVERIES_OUTCOMES}` (DeliveryAttempted): the delivery's latest outcome, shown by the order lookup.
Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(group_id: str = GROUP, oms_topics: Mapping[str, str] | None = None) -> KafkaRouter:
    """The subscribers and the trigger publisher; dependencies come from the app context (see ``main``).

    ``oms_topics`` maps each tenant's OMS topic to its tenant (``TenantsConfig.oms_topics``).
    """
    tenant_of_topic = dict(oms_topics or {})
    router = KafkaRouter()
    triggered = router.publisher(
        INTEGRATIONS_TRIGGERED,
        title=f"{INTEGRATIONS_TRIGGERED}:IntegrationsTriggered",
        description="These integrations of a tenant must receive this recipe's bundle; keyed by recipe ID.",
        schema=IntegrationsTriggered,
    )

    async def publish(triggers: Sequence[IntegrationsTriggered]) -> None:
        # Pipelined, each awaited to its broker acknowledgement, before the caller commits its transaction.
        results = await asyncio.gather(
            *(triggered.publish(trigger, key=trigger.recipe_id.encode()) for trigger in triggers),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, KafkaError | OSError | TimeoutError):
                raise TransientError(f"publishing {INTEGRATIONS_TRIGGERED} failed: {type(result).__name__}")
            if isinstance(result, BaseException):
                raise result

    # One consumer for ingest-api's topic and every OMS topic: per-order order holds within each topic, and a
    # group member per topic would cost a rebalance each at every start.
    @router.subscriber(
        ORDERS_EVENTS,
        *sorted(tenant_of_topic),
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="order-events:OmsOrderEvent",
        description=ORDER_EVENTS_DOC,
    )
    async def on_order_event(event: OmsOrderEvent, message: KafkaMessage, store: Store, tenants: Tenants) -> None:
        topic = str(getattr(message.raw_message, "topic", ""))
        await service.record_order_event(
            service.order_event_from(topic, event, tenant_of_topic), tenants, store, publish
        )

    # The topics only Recipe Relay's own services publish share one consumer: every group member joins (and
    # rebalances the group) on its own, which on Tansu costs seconds per member at each start. ``orders.events.v1``
    # keeps its typed subscriber: it is the contract OMS teams publish to, documented by the AsyncAPI document.
    @router.subscriber(
        RECIPES_SAVED,
        INTEGRATIONS_TRIGGERED,
        DELIVERIES_OUTCOMES,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{SERVICE_TITLE}:internal",
        description=INTERNAL_DOC,
    )
    async def on_internal_message(message: KafkaMessage, store: Store, tenants: Tenants) -> None:
        # Decoded here, by topic; a ValidationError dead-letters the raw message (error middleware).
        topic = getattr(message.raw_message, "topic", None)
        if topic == RECIPES_SAVED:
            await service.record_recipe_saved(RecipeSaved.model_validate_json(message.body), tenants, store, publish)
        elif topic == INTEGRATIONS_TRIGGERED:
            await service.record_trigger(IntegrationsTriggered.model_validate_json(message.body), tenants, store)
        elif topic == DELIVERIES_OUTCOMES:
            await service.record_delivery_outcome(DeliveryAttempted.model_validate_json(message.body), store)
        else:
            raise PermanentError(f"no handler for topic {str(topic)[:64]!r}")

    return router
