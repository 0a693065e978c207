"""The error middleware on a real broker: bad messages are dead-lettered with a reason, the next one is processed,
and a transient failure is re-read rather than lost."""

import asyncio
import base64
import uuid
from datetime import UTC, datetime

import pytest
from faststream.middlewares import AckPolicy

from relay_contracts.messages import MessageDeadLettered, RecipeSaved
from relay_contracts.topics import DELIVERIES_DEAD
from relay_platform.broker import ensure_topics, make_broker
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
    by_payload = {base64.b64decode(d.payload_b64): d for d in dead}
    assert set(by_payload) == {b"{not json", b'{"eventId":"x"}'}
    assert by_payload[b"{not json"].key == "k1"
    assert by_payload[b"{not json"].service == "test"
    assert by_payload[b"{not json"].consumer_group == "mw-test"
    assert "invalid message" in by_payload[b'{"eventId":"x"}'].reason
    assert "tenant" in by_payload[b'{"eventId":"x"}'].reason
