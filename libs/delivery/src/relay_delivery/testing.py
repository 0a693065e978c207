"""Helpers for deliverer tests: build bundles in a store, start an app, collect outcomes from a real broker or run
the app on FastStream's in-memory broker."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from faststream import FastStream, TestApp
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from relay_contracts.messages import (
    BundleFile,
    DeliverBundle,
    DeliveryAttempted,
    Feed,
    IntegrationStateChanged,
    MessageDeadLettered,
    OrderLine,
    RetryDelivery,
    delivery_key,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    IntegrationType,
    deliveries_requested,
)
from relay_delivery.app import CONTROL_READER
from relay_delivery.control import ControlReader
from relay_delivery.states import IntegrationStates
from relay_platform.objectstore import ObjectStore
from relay_platform.settings import KafkaSettings
from relay_platform.subscriber import on_topic, subscribe, topic_of


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
        consumer = subscribe(
            broker,
            DELIVERIES_OUTCOMES,
            DELIVERIES_RETRY,
            kafka=KafkaSettings(bootstrap_servers=self.bootstrap),
            group_id=group,
            title="test:outcomes",
            description="Every outcome and retry command, for the tests to wait on.",
        )

        @consumer
        async def collect(message: KafkaMessage) -> None:
            async with self._changed:
                # Another test's malformed message is nothing to wait for: read on (it is not for us to judge).
                with suppress(ValidationError):
                    if topic_of(message) == DELIVERIES_RETRY:
                        retry = RetryDelivery.model_validate_json(message.body)
                        self.retries.setdefault(retry.request.delivery_id, []).append(retry)
                    else:
                        outcome = DeliveryAttempted.model_validate_json(message.body)
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


@dataclass
class InMemoryDeliverer:
    """A deliverer app running on FastStream's in-memory broker, and what it published (with the keys)."""

    broker: KafkaBroker
    # The app's view of integrations.control.v1 (no reader runs in memory): ``change`` feeds it.
    states: IntegrationStates = field(default_factory=IntegrationStates)
    outcomes: list[tuple[DeliveryAttempted, bytes | None]] = field(default_factory=list)
    retries: list[tuple[RetryDelivery, bytes | None]] = field(default_factory=list)
    dead: list[MessageDeadLettered] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def publish(self, request: DeliverBundle | dict[str, object], topic: str | None = None) -> None:
        """Publish a request (or a malformed one, as a dict) to its deliverer's topic, keyed by delivery ID."""
        if isinstance(request, DeliverBundle):
            topic = topic or deliveries_requested(request.integration_type)
            await self.broker.publish(request, topic, key=delivery_key(request.delivery_id))
        else:
            if topic is None:
                raise ValueError("a malformed request needs its topic")
            await self.broker.publish(request, topic)

    def change(self, change: IntegrationStateChanged) -> None:
        """An integration paused or resumed, as if read from ``integrations.control.v1``."""
        self.states.apply(change)

    async def wait_for_retries(self, count: int, *, deadline_s: float = 10.0) -> list[RetryDelivery]:
        """The first ``count`` retry (and hold) commands."""
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: len(self.retries) >= count)
            return [retry for retry, _ in self.retries]

    async def wait_for_outcomes(self, count: int, *, deadline_s: float = 10.0) -> list[DeliveryAttempted]:
        """The first ``count`` outcomes (attempts may run concurrently, after ``publish`` returned)."""
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: len(self.outcomes) >= count)
            return [outcome for outcome, _ in self.outcomes]

    async def _record(self, record: Callable[[], None]) -> None:
        async with self._changed:
            record()
            self._changed.notify_all()


@asynccontextmanager
async def in_memory(app: FastStream) -> AsyncIterator[InMemoryDeliverer]:
    """Run a deliverer ``app`` on FastStream's ``TestKafkaBroker``: its start-up and shutdown as in production
    (resources opened, drained, closed), no broker process."""
    if not isinstance(app.broker, KafkaBroker):
        raise TypeError("a deliverer app runs on a KafkaBroker")
    collected = InMemoryDeliverer(app.broker)
    control = app.context.get(CONTROL_READER)
    if isinstance(control, ControlReader):
        # No topic to read in memory: caught up from the start, and the test says what is paused.
        control.in_memory()
        collected.states = control.states
    consumer = subscribe(
        app.broker,
        DELIVERIES_OUTCOMES,
        DELIVERIES_RETRY,
        DELIVERIES_DEAD,
        kafka=KafkaSettings(),
        group_id="test-in-memory",
        title="test:published",
        description="What the deliverer published, for the test to read.",
    )

    @consumer(filter=on_topic(DELIVERIES_OUTCOMES))
    async def on_outcome(outcome: DeliveryAttempted, message: KafkaMessage) -> None:
        await collected._record(lambda: collected.outcomes.append((outcome, _key(message))))

    @consumer(filter=on_topic(DELIVERIES_RETRY))
    async def on_retry(retry: RetryDelivery, message: KafkaMessage) -> None:
        await collected._record(lambda: collected.retries.append((retry, _key(message))))

    @consumer(filter=on_topic(DELIVERIES_DEAD))
    async def on_dead(letter: MessageDeadLettered) -> None:
        await collected._record(lambda: collected.dead.append(letter))

    async with TestKafkaBroker(app.broker) as broker, TestApp(app):
        collected.broker = broker
        yield collected


def _key(message: KafkaMessage) -> bytes | None:
    record = message.raw_message
    key = None if isinstance(record, tuple) else record.key
    return key if isinstance(key, bytes) else None
