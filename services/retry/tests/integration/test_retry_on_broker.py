"""The retry service on a real broker: back-off, Retry-After, give-up, restart on the same database, cancellation.

A watcher reads the output topics by assigning partitions (no consumer group, so no join delay); each test uses
its own delivery IDs, so messages of other tests on the shared broker do not matter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Self

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationState,
    IntegrationStateChanged,
    MessageDeadLettered,
    OrderEventOccurred,
    OrderEventType,
    OrderLine,
    RetryDelivery,
    order_key,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    INTEGRATIONS_CONTROL,
    ORDERS_EVENTS,
    IntegrationType,
    deliveries_requested,
)
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import TenantsConfig, load_tenants
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import ORDER_CANCELLED, OrderState
from relay_retry.main import create_app
from relay_retry.settings import ScheduleDatabaseSettings, Settings

pytestmark = pytest.mark.integration

TENANTS_FILE = Path(__file__).parent.parent / "tenants.yaml"
TENANT = "rt"
OTHER_TENANT = "rt2"  # same integration IDs, same order IDs in the hostile tests
HOSTILE_ORDER = "é" * 100 + "注文" * 14  # 128 characters, none ASCII
WATCHED = (deliveries_requested("zapier"), deliveries_requested("email"), DELIVERIES_OUTCOMES, DELIVERIES_DEAD)


def deliver_bundle(
    integration_id: str = "fast-hook",
    *,
    integration_type: IntegrationType = "zapier",
    attempt: int = 1,
    order_id: str | None = None,
    tenant: str = TENANT,
) -> DeliverBundle:
    delivery_id = uuid.uuid4().hex
    order = OrderLine(order_id=order_id, order_number="1022", item_id="1") if order_id else None
    return DeliverBundle(
        delivery_id=delivery_id,
        trigger_id=f"t-{delivery_id}",
        tenant=tenant,
        integration_id=integration_id,
        integration_type=integration_type,
        recipe_id=f"999-{delivery_id[:12]}",
        feed="order" if order else "recipe",
        reason="order_created" if order else "recipe_saved",
        order=order,
        attempt=attempt,
        requested_at=datetime.now(UTC),
    )


def retry_of(request: DeliverBundle, *, retry_after_s: float | None = None) -> RetryDelivery:
    return RetryDelivery(
        request=request,
        error_class="TransientError",
        error_message="hook answered 503",
        retry_after_s=retry_after_s,
        failed_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    seen_at: float  # time.time() when the watcher read it
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class TopicWatcher:
    """Reads topics from their end at start-up, by partition assignment."""

    bootstrap: str
    topics: tuple[str, ...]
    records: list[Record] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        partitions = [
            TopicPartition(topic, partition)
            for topic in self.topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end offsets now, before the tests publish
            await consumer.position(partition)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=50)
            seen_at = time.time()
            if batches:
                async with self._changed:
                    for records in batches.values():
                        self.records.extend(Record(r.topic, r.key, r.value, seen_at, dict(r.headers)) for r in records)
                    self._changed.notify_all()

    def requests(self, delivery_id: str) -> list[tuple[Record, DeliverBundle]]:
        return [
            (record, DeliverBundle.model_validate_json(record.value))
            for record in self.records
            if record.topic.startswith("deliveries.requested.") and delivery_id.encode() in record.value
        ]

    def outcomes(self, delivery_id: str) -> list[DeliveryAttempted]:
        return [
            DeliveryAttempted.model_validate_json(r.value)
            for r in self.records
            if r.topic == DELIVERIES_OUTCOMES and delivery_id.encode() in r.value
        ]

    def dead_letters(self, delivery_id: str) -> list[MessageDeadLettered]:
        found = []
        for record in self.records:
            if record.topic == DELIVERIES_DEAD:
                dead = MessageDeadLettered.model_validate_json(record.value)
                if delivery_id in dead.reason:
                    found.append(dead)
        return found

    async def wait(self, condition: Callable[[], object], *, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(condition()))


@dataclass
class RetryService:
    """The retry app on the test broker, restartable on the same SQLite file."""

    settings: Settings
    tenants: TenantsConfig
    app: FastStream | None = None
    # The spans the service makes, as an exporter would receive them.
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)

    async def start(self) -> None:
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(self.spans))
        self.app = create_app(self.settings, tenants=self.tenants, tracer_provider=tracing)
        await self.app.start()

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    async def order_state(self, order_id: str, tenant: str = TENANT) -> OrderState | None:
        async with SqlRetrySchedule.open(self.settings.database.url) as schedule:
            return await schedule.order_state(tenant, order_id)

    async def pending(self, delivery_id: str) -> int:
        """Scheduled rows of one delivery: other tests (and other services' tests) share the broker's topics."""
        async with SqlRetrySchedule.open(self.settings.database.url) as schedule:
            return await schedule.pending(delivery_id)


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def watcher(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    async with TopicWatcher(kafka_bootstrap, WATCHED) as watcher:
        yield watcher


async def caught_up(admin: AIOKafkaAdminClient, bootstrap: str, *, group: str, timeout: float = 180.0) -> None:
    """Wait until ``group`` committed up to the end (as of now) of every partition of the retry service's topics.

    A new group starts at the earliest offset: on the session's shared broker that is every retry command and order
    event the other services' tests published before, which the service works through first."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in (DELIVERIES_RETRY, ORDERS_EVENTS, INTEGRATIONS_CONTROL)
            for partition in sorted(probe.partitions_for_topic(topic) or ())
        ]
        ends = await probe.end_offsets(partitions)
    finally:
        await probe.stop()
    async with asyncio.timeout(timeout):
        while True:
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            behind = [p for p in partitions if ends[p] > max(committed[p].offset if p in committed else 0, 0)]
            if not behind:
                return
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def retry_service(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    producer: AIOKafkaProducer,
    watcher: TopicWatcher,
    admin: AIOKafkaAdminClient,
) -> AsyncIterator[RetryService]:
    database = tmp_path_factory.mktemp("retry") / "retry.db"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        database=ScheduleDatabaseSettings(url=f"sqlite+aiosqlite:///{database}"),
        tenants_file=TENANTS_FILE,
        idle_recheck_s=1.0,
    )
    service = RetryService(settings, load_tenants(TENANTS_FILE))
    await service.start()
    try:
        # Ready once a message goes through: the consumer group has its partitions.
        probe = deliver_bundle(attempt=3)
        await send_retry(producer, retry_of(probe))
        await watcher.wait(lambda: watcher.outcomes(probe.delivery_id), timeout=60)
        await caught_up(admin, kafka_bootstrap, group=settings.consumer_group)
        yield service
    finally:
        await service.stop()


@pytest.fixture(scope="module")
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def send_retry(
    producer: AIOKafkaProducer, retry: RetryDelivery, *, traceparent: str | None = None
) -> RecordMetadata:
    # Keyed by delivery ID, as the deliverers publish it; in the deliverer's trace when ``traceparent`` is given.
    headers = [("traceparent", traceparent.encode())] if traceparent is not None else None
    return await producer.send_and_wait(
        DELIVERIES_RETRY, retry.model_dump_json().encode(), key=retry.request.delivery_id.encode(), headers=headers
    )


def order_event(
    kind: OrderEventType, at: datetime, *, order_id: str, tenant: str = TENANT, order_number: str = "1022"
) -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=uuid.uuid4().hex,
        tenant=tenant,
        type=kind,
        order_id=order_id,
        order_number=order_number,
        occurred_at=at,
    )


async def send_event(producer: AIOKafkaProducer, event: OrderEventOccurred) -> RecordMetadata:
    return await producer.send_and_wait(ORDERS_EVENTS, event.model_dump_json().encode(), key=event.kafka_key)


async def processed(admin: AIOKafkaAdminClient, sent: RecordMetadata, *, timeout: float = 20.0) -> None:
    """Wait until the retry service committed past ``sent``: it handled it (an effect-free message included)."""
    partition = TopicPartition(sent.topic, sent.partition)
    async with asyncio.timeout(timeout):
        while True:
            offsets = await admin.list_consumer_group_offsets("retry", partitions=[partition])
            committed = offsets.get(partition)
            if committed is not None and committed.offset > sent.offset:
                return
            await asyncio.sleep(0.05)


async def test_first_failure_is_re_requested_as_attempt_2_on_its_deliverer_topic_after_the_backoff(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    request = deliver_bundle("factory-mail", integration_type="email", order_id="6182665224482")
    retry = retry_of(request)
    await send_retry(producer, retry)

    await watcher.wait(lambda: watcher.requests(request.delivery_id))

    [(record, again)] = watcher.requests(request.delivery_id)
    assert record.topic == deliveries_requested("email")
    assert record.key == request.delivery_id.encode()
    assert again == request.model_copy(update={"attempt": 2})
    assert record.seen_at - retry.failed_at.timestamp() >= 0.05 * 0.9
    # The row is deleted once the broker confirmed the publish, which may be just after the watcher saw it.
    async with asyncio.timeout(10):
        while await retry_service.pending(request.delivery_id) != 0:
            await asyncio.sleep(0.02)


async def test_last_attempt_failing_publishes_one_final_failure_and_a_replayable_dead_letter(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    request = deliver_bundle(attempt=3, order_id="6182665224482")
    await send_retry(producer, retry_of(request))

    await watcher.wait(lambda: watcher.outcomes(request.delivery_id) and watcher.dead_letters(request.delivery_id))

    [outcome] = watcher.outcomes(request.delivery_id)
    assert (outcome.status, outcome.final, outcome.attempt) == ("failed", True, 3)
    assert (outcome.error_class, outcome.error_message) == ("TransientError", "hook answered 503")
    assert outcome.order == request.order
    [dead] = watcher.dead_letters(request.delivery_id)
    assert dead.source_topic == deliveries_requested("zapier")
    assert dead.key == request.delivery_id
    assert dead.service == "retry"
    assert "3 of 3 attempts" in dead.reason
    replay = DeliverBundle.model_validate_json(base64.b64decode(dead.payload_b64))
    assert replay == request.model_copy(update={"attempt": 1})
    assert not watcher.requests(request.delivery_id)


async def test_retry_due_later_does_not_hold_back_one_due_sooner(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    slow = deliver_bundle("slow-hook")  # back-off 2 s
    fast = deliver_bundle("fast-hook")  # back-off 50 ms
    await send_retry(producer, retry_of(slow))
    fast_retry = retry_of(fast)
    await send_retry(producer, fast_retry)

    await watcher.wait(lambda: watcher.requests(fast.delivery_id))
    [(fast_record, _)] = watcher.requests(fast.delivery_id)
    assert fast_record.seen_at - fast_retry.failed_at.timestamp() < 1.0
    assert not watcher.requests(slow.delivery_id)

    await watcher.wait(lambda: watcher.requests(slow.delivery_id))
    [(slow_record, again)] = watcher.requests(slow.delivery_id)
    assert again.attempt == 2
    assert slow_record.seen_at > fast_record.seen_at


async def test_retry_after_from_the_destination_is_honoured(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    request = deliver_bundle("fast-hook")
    retry = retry_of(request, retry_after_s=2)
    await send_retry(producer, retry)

    await watcher.wait(lambda: watcher.requests(request.delivery_id))

    [(record, _)] = watcher.requests(request.delivery_id)
    assert record.seen_at - retry.failed_at.timestamp() >= 2.0


async def test_scheduled_retry_survives_a_restart_on_the_same_database_in_the_orders_trace(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    # The deliverer's attempt span, as its retry command carries it: the order's trace.
    trace_id, attempt_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    request = deliver_bundle("fast-hook")
    await send_retry(producer, retry_of(request, retry_after_s=1.5), traceparent=f"00-{trace_id}-{attempt_span}-01")
    async with asyncio.timeout(20):
        while await retry_service.pending(request.delivery_id) == 0:
            await asyncio.sleep(0.02)
    await retry_service.stop()
    assert not watcher.requests(request.delivery_id)

    await retry_service.start()

    await watcher.wait(lambda: watcher.requests(request.delivery_id), timeout=60)
    [(record, again)] = watcher.requests(request.delivery_id)
    assert again.attempt == 2
    # Published by the scheduler of a process that never saw the command: the trace came from the database.
    version, carried_trace, parent_span, _flags = record.headers["traceparent"].decode().split("-")
    assert (version, carried_trace) == ("00", trace_id)
    assert parent_span != attempt_span  # the retry service's own producer span, a descendant of the attempt's
    published = [
        span
        for span in retry_service.spans.get_finished_spans()
        if span.context is not None
        and span.context.trace_id == int(trace_id, 16)
        and span.name.startswith(deliveries_requested("zapier"))
    ]
    assert published, "no producer span of the re-request in the order's trace"


async def test_retries_of_different_orders_keep_their_own_traces(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    # Due together, so the scheduler publishes them in one round, concurrently: no trace may leak to the other.
    requests = [deliver_bundle("fast-hook") for _ in range(3)]
    traces = {request.delivery_id: uuid.uuid4().hex for request in requests}
    for request in requests:
        traceparent = f"00-{traces[request.delivery_id]}-{uuid.uuid4().hex[:16]}-01"
        await send_retry(producer, retry_of(request), traceparent=traceparent)
    untraced = deliver_bundle("fast-hook")
    await send_retry(producer, retry_of(untraced))

    await watcher.wait(lambda: all(watcher.requests(r.delivery_id) for r in [*requests, untraced]))
    for request in requests:
        [(record, _)] = watcher.requests(request.delivery_id)
        assert record.headers["traceparent"].decode().split("-")[1] == traces[request.delivery_id]
    [(record, _)] = watcher.requests(untraced.delivery_id)
    assert record.headers["traceparent"].decode().split("-")[1] not in traces.values()


async def test_fresh_cancellation_drops_the_pending_retry_and_publishes_its_final_failure(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher
) -> None:
    order_id = f"{HOSTILE_ORDER[:-8]}{uuid.uuid4().hex[:8]}"
    cancelled = deliver_bundle("fast-hook", order_id=order_id)
    # The cancellation notice of the same order, failed too: it must keep its retry.
    notice = deliver_bundle("fast-hook", order_id=order_id).model_copy(update={"reason": "order_cancelled"})
    # Another tenant's order with the same ID: never touched by this tenant's cancellation.
    theirs = deliver_bundle("fast-hook", order_id=order_id, tenant=OTHER_TENANT)
    for request in (cancelled, notice, theirs):
        await send_retry(producer, retry_of(request, retry_after_s=1.5))
    async with asyncio.timeout(20):
        for request in (cancelled, notice, theirs):
            while not await retry_service.pending(request.delivery_id):
                await asyncio.sleep(0.02)
    event = order_event("cancelled", datetime.now(UTC), order_id=order_id)
    await send_event(producer, event)

    await watcher.wait(lambda: watcher.outcomes(cancelled.delivery_id))
    [outcome] = watcher.outcomes(cancelled.delivery_id)
    assert (outcome.status, outcome.final, outcome.attempt) == ("failed", True, 1)
    assert outcome.error_class == ORDER_CANCELLED
    assert outcome.error_message == (
        f"order 1022 was cancelled at {event.occurred_at.isoformat()}, so attempt 2 was not made"
    )
    assert outcome.order == cancelled.order
    [record] = [
        r for r in watcher.records if r.topic == DELIVERIES_OUTCOMES and cancelled.delivery_id.encode() in r.value
    ]
    assert record.key == cancelled.delivery_id.encode()
    await watcher.wait(lambda: watcher.requests(notice.delivery_id) and watcher.requests(theirs.delivery_id))
    assert not watcher.requests(cancelled.delivery_id)
    assert [again.reason for _, again in watcher.requests(notice.delivery_id)] == ["order_cancelled"]
    assert [again.tenant for _, again in watcher.requests(theirs.delivery_id)] == [OTHER_TENANT]
    assert not watcher.outcomes(notice.delivery_id)
    assert not watcher.outcomes(theirs.delivery_id)
    assert await retry_service.pending(cancelled.delivery_id) == 0
    assert order_key(TENANT, order_id) == event.kafka_key


async def test_stale_cancellation_keeps_the_retry_of_a_reopened_order(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher, admin: AIOKafkaAdminClient
) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    reopened_at = datetime.now(timezone(timedelta(hours=-12)))
    await send_event(producer, order_event("cancelled", reopened_at - timedelta(hours=2), order_id=order_id))
    await processed(admin, await send_event(producer, order_event("created", reopened_at, order_id=order_id)))
    request = deliver_bundle("fast-hook", order_id=order_id)
    await send_retry(producer, retry_of(request, retry_after_s=1.5))
    async with asyncio.timeout(20):
        while not await retry_service.pending(request.delivery_id):
            await asyncio.sleep(0.02)

    # Later in the log, earlier in time (written at +14:00: still an hour before the re-opening).
    stale = order_event(
        "cancelled", (reopened_at - timedelta(hours=1)).astimezone(timezone(timedelta(hours=14))), order_id=order_id
    )
    await processed(admin, await send_event(producer, stale))

    assert await retry_service.pending(request.delivery_id) == 1
    await watcher.wait(lambda: watcher.requests(request.delivery_id))
    assert [again.attempt for _, again in watcher.requests(request.delivery_id)] == [2]
    assert not watcher.outcomes(request.delivery_id)
    state = await retry_service.order_state(order_id)
    assert state is not None
    assert (state.status, state.status_at) == ("open", reopened_at)


async def test_retry_arriving_after_its_orders_cancellation_ends_with_a_final_failure(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher, admin: AIOKafkaAdminClient
) -> None:
    late = deliver_bundle("fast-hook", order_id=HOSTILE_ORDER)
    theirs = deliver_bundle("fast-hook", order_id=HOSTILE_ORDER, tenant=OTHER_TENANT)
    cancelled_at = datetime.now(timezone(timedelta(hours=14)))
    await processed(admin, await send_event(producer, order_event("cancelled", cancelled_at, order_id=HOSTILE_ORDER)))

    await send_retry(producer, retry_of(late, retry_after_s=0.2))
    await send_retry(producer, retry_of(theirs, retry_after_s=0.2))

    await watcher.wait(lambda: watcher.outcomes(late.delivery_id) and watcher.requests(theirs.delivery_id))
    [outcome] = watcher.outcomes(late.delivery_id)
    assert (outcome.status, outcome.final, outcome.attempt, outcome.error_class) == ("failed", True, 1, ORDER_CANCELLED)
    assert outcome.error_message == f"order 1022 was cancelled at {cancelled_at.isoformat()}, so attempt 2 was not made"
    assert not watcher.requests(late.delivery_id)
    assert await retry_service.pending(late.delivery_id) == 0
    assert not watcher.outcomes(theirs.delivery_id)


async def test_duplicate_retry_command_publishes_nothing(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher, admin: AIOKafkaAdminClient
) -> None:
    request = deliver_bundle("fast-hook", order_id=f"o-{uuid.uuid4().hex[:8]}")
    retry = retry_of(request, retry_after_s=1.5)
    await send_retry(producer, retry)
    await processed(admin, await send_retry(producer, retry))

    assert await retry_service.pending(request.delivery_id) == 1
    assert not watcher.outcomes(request.delivery_id)
    await watcher.wait(lambda: watcher.requests(request.delivery_id))
    assert [again.attempt for _, again in watcher.requests(request.delivery_id)] == [2]
    assert not watcher.outcomes(request.delivery_id)


# --- paused integrations ---------------------------------------------------------------------------------------


def integration_change(state: IntegrationState, at: datetime, *, integration_id: str) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant=OTHER_TENANT, integration_id=integration_id, state=state, changed_at=at
    )


async def send_change(producer: AIOKafkaProducer, change: IntegrationStateChanged) -> RecordMetadata:
    return await producer.send_and_wait(INTEGRATIONS_CONTROL, change.model_dump_json().encode(), key=change.kafka_key)


async def test_a_held_request_waits_for_the_resume_and_is_then_requested_with_the_same_attempt(
    retry_service: RetryService, producer: AIOKafkaProducer, watcher: TopicWatcher, admin: AIOKafkaAdminClient
) -> None:
    t0 = datetime.now(UTC)
    await processed(admin, await send_change(producer, integration_change("paused", t0, integration_id="slow-hook")))
    request = deliver_bundle("slow-hook", tenant=OTHER_TENANT, attempt=2)
    hold = RetryDelivery(
        request=request,
        error_class="IntegrationPaused",
        error_message="integration slow-hook is paused; not attempted, held",
        failed_at=datetime.now(UTC),
        hold="paused",
    )

    await processed(admin, await send_retry(producer, hold))

    # Stored (held), and not requested: the scheduler never takes a held row, whatever the time.
    assert await retry_service.pending(request.delivery_id) == 1
    assert watcher.requests(request.delivery_id) == []
    assert watcher.outcomes(request.delivery_id) == []

    await send_change(producer, integration_change("active", t0 + timedelta(seconds=1), integration_id="slow-hook"))
    await watcher.wait(lambda: watcher.requests(request.delivery_id))

    [(record, again)] = watcher.requests(request.delivery_id)
    assert record.topic == deliveries_requested("zapier")
    assert again == request  # attempt 2 again: the held attempt was never made
    assert watcher.outcomes(request.delivery_id) == []
