"""The error middleware on a real broker: bad messages are dead-lettered with a reason, the next one is processed,
and a transient failure is re-read rather than lost."""

import asyncio
import base64
import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faststream.middlewares import AckPolicy

from relay_contracts.messages import MessageDeadLettered, RecipeSaved
from relay_contracts.topics import DELIVERIES_DEAD
from relay_platform.broker import MessageRead, consumer_options, current_read, ensure_topics, make_broker
from relay_platform.errors import TransientError
from relay_platform.settings import KafkaSettings

pytestmark = pytest.mark.integration


def _recipe_saved(n: int) -> RecipeSaved:
    now = datetime.now(UTC)
    return RecipeSaved(
        event_id=f"e{n}",
        tenant="demo",
        recipe_id=f"999-{n}",
        recipe_key=f"recipe/999-{n}.json",
        created=now,
        occurred_at=now,
    )


async def test_malformed_message_is_dead_lettered_and_next_one_processed(kafka_bootstrap: str) -> None:
    topic = f"test.mw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=1)
    broker = make_broker(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.05),
        service="test",
        tracer_provider=None,
    )
    received: list[str] = []
    dead: list[MessageDeadLettered] = []
    attempts: dict[str, int] = {}
    done = asyncio.Event()

    @broker.subscriber(topic, group_id="mw-test", auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR)
    async def handle(event: RecipeSaved) -> None:
        attempts[event.event_id] = attempts.get(event.event_id, 0) + 1
        if event.event_id == "e2" and attempts["e2"] == 1:
            raise TransientError("database restarting")
        received.append(event.event_id)
        if event.event_id == "e3":
            done.set()

    @broker.subscriber(
        DELIVERIES_DEAD, group_id=f"dead-{topic}", auto_offset_reset="earliest", ack_policy=AckPolicy.ACK
    )
    async def collect(message: MessageDeadLettered) -> None:
        if message.source_topic == topic:
            dead.append(message)

    async with broker:
        await broker.start()
        await broker.publish(_recipe_saved(1), topic)
        await broker.publish(b"{not json", topic, key=b"k1")
        await broker.publish({"eventId": "x"}, topic)
        await broker.publish(_recipe_saved(2), topic)
        await broker.publish(_recipe_saved(3), topic)
        await asyncio.wait_for(done.wait(), 60)
        async with asyncio.timeout(30):
            while len(dead) < 2:
                await asyncio.sleep(0.05)

    assert received == ["e1", "e2", "e3"]
    assert attempts["e2"] == 2
    # Dead letters keep their original keys, so they may land on different partitions: match by payload.
    by_hash = {d.payload_sha256: d for d in dead}
    not_json = by_hash[hashlib.sha256(b"{not json").hexdigest()]
    # Not JSON, so nothing of it is kept (it could hold anything, personal data included): only size and hash.
    assert (not_json.payload_b64, not_json.payload_complete, not_json.payload_size) == ("", False, 9)
    by_payload = {base64.b64decode(d.payload_b64): d for d in dead}
    assert b'{"eventId":"x"}' in by_payload
    assert not_json.key == "k1"
    assert not_json.service == "test"
    assert not_json.consumer_group == "mw-test"
    assert "invalid message" in by_payload[b'{"eventId":"x"}'].reason
    assert "tenant" in by_payload[b'{"eventId":"x"}'].reason


async def test_every_message_ends_transient_reads_are_bounded_and_big_or_stuck_ones_do_not_block_the_partition(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.mw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=1)
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        transient_backoff_s=0.05,
        transient_backoff_max_s=0.2,
        transient_max_reads=4,
        handler_timeout_s=1.0,
    )
    broker = make_broker(settings, service="test", tracer_provider=None)
    reads: dict[str, list[MessageRead]] = {}
    dead: list[MessageDeadLettered] = []
    done = asyncio.Event()

    @broker.subscriber(topic, **consumer_options(settings, "mw-bounded"))
    async def handle(event: RecipeSaved) -> None:
        reads.setdefault(event.event_id, []).append(current_read())
        if event.event_id == "always-transient":
            raise TransientError("the database is still restarting")
        if event.event_id == "too-slow":
            await asyncio.Event().wait()
        if event.event_id == "not-retriable":
            raise MessageSizeTooLargeError
        if event.event_id == "last":
            done.set()

    @broker.subscriber(
        DELIVERIES_DEAD, group_id=f"dead-{topic}", auto_offset_reset="earliest", ack_policy=AckPolicy.ACK
    )
    async def collect(message: MessageDeadLettered) -> None:
        if message.source_topic == topic:
            dead.append(message)

    # Invalid and close to the producer's 1 MiB request limit: base64 in a dead letter would not fit.
    huge = b'{"eventId": "' + b"x" * 900_000 + b'"}'
    async with broker:
        await broker.start()
        for event_id in ("always-transient", "too-slow", "not-retriable"):
            await broker.publish(_recipe_saved(1).model_copy(update={"event_id": event_id}), topic)
        await broker.publish(huge, topic, key=b"huge")
        await broker.publish(_recipe_saved(1).model_copy(update={"event_id": "last"}), topic)
        await asyncio.wait_for(done.wait(), 90)
        async with asyncio.timeout(30):
            while len(dead) < 4:
                await asyncio.sleep(0.05)

    assert [r.number for r in reads["always-transient"]] == [1, 2, 3, 4]
    assert [r.final for r in reads["always-transient"]] == [False, False, False, True]
    assert len(reads["too-slow"]) == 4
    assert len(reads["not-retriable"]) == 1
    assert len(reads["last"]) == 1
    by_offset = {d.offset: d for d in dead}
    assert by_offset[0].reason == "gave up after 4 reads; last transient failure: the database is still restarting"
    assert by_offset[1].reason == "gave up after 4 reads; last transient failure: handler ran past its 1 s budget"
    assert "MessageSizeTooLargeError is not retriable" in by_offset[2].reason
    letter = by_offset[3]
    assert letter.error_class == "ValidationError"
    assert letter.payload_b64 == ""
    assert not letter.payload_complete
    assert letter.payload_size == len(huge)
    assert letter.payload_sha256 == hashlib.sha256(huge).hexdigest()
