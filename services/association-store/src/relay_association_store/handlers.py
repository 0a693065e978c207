"""Kafka subscribers: decode, call the service, publish. The offset is committed after the handler returns."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from aiokafka.errors import KafkaError
from faststream import Context
from faststream.kafka import KafkaRouter
from faststream.middlewares import AckPolicy

from relay_association_store import service
from relay_association_store.adapters.repository import SqlStore
from relay_contracts.messages import DeliveryAttempted, IntegrationsTriggered, OrderEventOccurred, RecipeSaved
from relay_contracts.topics import DELIVERIES_OUTCOMES, INTEGRATIONS_TRIGGERED, ORDERS_EVENTS, RECIPES_SAVED
from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig

GROUP = "association-store"

Store = Annotated[SqlStore, Context("store")]
Tenants = Annotated[TenantsConfig, Context("tenants")]

ORDER_EVENTS_DOC = """\
Order lifecycle events from ingest-api or directly from an OMS, keyed by `tenant:orderId` so one order's events
stay in order. Only non-personal metadata is kept (order ID/number, line item ID, recipe ID, quantity); any other
field is dropped on decode. Safe to resend: idempotent on `eventId` and on the business keys (tenant + orderId
[+ itemId]). Send `occurredAt` from your own database: an event older than the stored state never overwrites it.
`type`: `linked` (items link recipes to line items; order created as `open` if new), `created` (order open;
`items` is the full item list), `updated` (`items`, if given, replaces the item list), `cancelled`, `refunded`,
`returned`. Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(group_id: str = GROUP) -> KafkaRouter:
    """The subscribers and the trigger publisher; dependencies come from the app context (see ``main``)."""
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

    @router.subscriber(
        RECIPES_SAVED,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{RECIPES_SAVED}:RecipeSaved",
        description="A recipe was saved: record it and fire the raw recipe feed of the tenant's integrations.",
    )
    async def on_recipe_saved(event: RecipeSaved, store: Store, tenants: Tenants) -> None:
        await service.record_recipe_saved(event, tenants, store, publish)

    @router.subscriber(
        ORDERS_EVENTS,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{ORDERS_EVENTS}:OrderEventOccurred",
        description=ORDER_EVENTS_DOC,
    )
    async def on_order_event(event: OrderEventOccurred, store: Store, tenants: Tenants) -> None:
        await service.record_order_event(event, tenants, store, publish)

    @router.subscriber(
        DELIVERIES_OUTCOMES,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{DELIVERIES_OUTCOMES}:DeliveryAttempted",
        description="A delivery attempt's outcome: kept in the delivery log shown by the order lookup.",
    )
    async def on_delivery_attempted(outcome: DeliveryAttempted, store: Store) -> None:
        await service.record_delivery_outcome(outcome, store)

    return router
