"""Helpers for deliverer tests: build bundles in a store, start an app, collect outcomes from a real broker."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from relay_contracts.messages import (
    BundleFile,
    DeliverBundle,
    DeliveryAttempted,
    Feed,
    OrderLine,
    RetryDelivery,
    delivery_key,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, DELIVERIES_RETRY, IntegrationType, deliveries_requested
from relay_platform.objectstore import ObjectStore


async def store_bundle(
    store: ObjectStore,
    files: Mapping[str, tuple[bytes, str]],
    *,
    prefix: str = "bundles",
) -> tuple[BundleFile, ...]:
    """Write ``{name: (data, mime_type)}`` into ``store`` and return the matching ``BundleFile`` references."""
    folder = f"{prefix}/{uuid.uuid4().hex}"
    refs: list[BundleFile] = []
    for name, (data, mime_type) in files.items():
        key = f"{folder}/{name}"
        await store.put(key, data, content_type=mime_type)
        refs.append(
            BundleFile(name=name, mime_type=mime_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(), key=key)
        )
    return tuple(refs)


def deliver_bundle(
    *,
    tenant: str,
    integration_id: str,
    integration_type: IntegrationType,
    files: tuple[BundleFile, ...],
    recipe_id: str = "999-63CHGJokGoxPfSba",
    order: OrderLine | None = None,
    feed: Feed | None = None,
    attempt: int = 1,
    delivery_id: str | None = None,
) -> DeliverBundle:
    """A ``DeliverBundle`` with a fresh delivery ID; an order feed when ``order`` is given."""
    return DeliverBundle(
        delivery_id=delivery_id or uuid.uuid4().hex,
        trigger_id=uuid.uuid4().hex,
        tenant=tenant,
        integration_id=integration_id,
        integration_type=integration_type,
        recipe_id=recipe_id,
        feed=feed or ("order" if order else "recipe"),
        reason="order_created" if order else "recipe_saved",
        order=order,
        attempt=attempt,
        files=files,
        requested_at=datetime.now(UTC),
    )


@dataclass
class OutcomeCollector:
    """Records every ``DeliveryAttempted`` and ``RetryDelivery`` on the broker (its own consumer group).

    ``async with OutcomeCollector(bootstrap) as outcomes:`` then ``await outcomes.publish(request)`` and
    ``await outcomes.wait_for(request.delivery_id)``.
    """

    bootstrap: str
    outcomes: dict[str, list[DeliveryAttempted]] = field(default_factory=dict)
    retries: dict[str, list[RetryDelivery]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _broker: KafkaBroker | None = None

    async def __aenter__(self) -> Self:
        group = f"test-outcomes-{uuid.uuid4().hex[:8]}"
        broker = KafkaBroker(self.bootstrap, logger=None)

        # One consumer for both topics: each group join costs seconds on Tansu.
        @broker.subscriber(
            DELIVERIES_OUTCOMES,
            DELIVERIES_RETRY,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.ACK,
        )
        async def collect(message: KafkaMessage) -> None:
            body = message.body
            async with self._changed:
                if getattr(message.raw_message, "topic", None) == DELIVERIES_RETRY:
                    retry = RetryDelivery.model_validate_json(body)
                    self.retries.setdefault(retry.request.delivery_id, []).append(retry)
                else:
                    outcome = DeliveryAttempted.model_validate_json(body)
                    self.outcomes.setdefault(outcome.delivery_id, []).append(outcome)
                self._changed.notify_all()

        await broker.start()
        self._broker = broker
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._broker is not None:
            await self._broker.stop()

    async def publish(self, request: DeliverBundle, topic: str | None = None, *, partition: int | None = None) -> None:
        """Publish a request to its deliverer's topic (or ``topic``), keyed by delivery ID like the bundle-builder."""
        if self._broker is None:
            raise RuntimeError("OutcomeCollector used outside `async with`")
        await self._broker.publish(
            request,
            topic or deliveries_requested(request.integration_type),
            key=delivery_key(request.delivery_id),
            partition=partition,
        )

    async def wait_for(self, delivery_id: str, count: int = 1, *, deadline_s: float = 60.0) -> list[DeliveryAttempted]:
        """The first ``count`` outcomes of ``delivery_id``, waiting up to ``deadline_s`` seconds."""
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: len(self.outcomes.get(delivery_id, ())) >= count)
            return self.outcomes[delivery_id]

    async def wait_for_retry(self, delivery_id: str, *, deadline_s: float = 60.0) -> RetryDelivery:
        """The first ``RetryDelivery`` of ``delivery_id``."""
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: bool(self.retries.get(delivery_id)))
            return self.retries[delivery_id][0]


@asynccontextmanager
async def running_app(app: FastStream) -> AsyncIterator[FastStream]:
    """Start ``app`` (start-up hooks, broker) and stop it gracefully on exit, as SIGTERM would."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
