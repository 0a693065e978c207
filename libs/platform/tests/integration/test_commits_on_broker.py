"""Offset commits on a real broker (Tansu): what a consumer handled is committed (after its handler returned), so
neither a restart nor a member joining the group reads a handled record again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from relay_platform.app import service_app
from relay_platform.broker import ensure_topics, make_broker
from relay_platform.settings import KafkaSettings
from relay_platform.subscriber import subscribe

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def _eventually(check: Callable[[], bool], *, within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int | None]:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        return {p: await probe.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await probe.stop()


def _consumer_app(
    bootstrap: str, topic: str, group: str, seen: list[bytes]
) -> tuple[KafkaBroker, Callable[[], Awaitable[None]]]:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    broker = make_broker(settings, service="commit-test", tracer_provider=None)
    consumer = subscribe(broker, topic, kafka=settings, group_id=group, title="t", description="d")

    @consumer
    async def handle(body: bytes) -> None:
        seen.append(body)

    app = service_app(broker)

    async def stop() -> None:
        await app.stop()

    return broker, stop


async def _publish(bootstrap: str, topic: str, bodies: list[bytes]) -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap), service="commit-test-pub", tracer_provider=None)
    await broker.start()
    try:
        await asyncio.gather(*(broker.publish(body, topic, key=body) for body in bodies))
    finally:
        await broker.stop()


async def test_everything_handled_is_committed_when_the_app_stops_so_a_restart_reads_nothing_again(
    kafka_bootstrap: str,
) -> None:
    topic, group = f"test.commits.{uuid.uuid4().hex[:8]}", f"commits-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=PARTITIONS)
    bodies = [f"m{n}".encode() for n in range(60)]
    seen: list[bytes] = []
    broker, stop = _consumer_app(kafka_bootstrap, topic, group, seen)
    await broker.start()
    app_stopped = False
    try:
        await _publish(kafka_bootstrap, topic, bodies)
        await _eventually(lambda: len(set(seen)) == len(bodies))
        await stop()
        app_stopped = True
    finally:
        if not app_stopped:
            await broker.stop()

    # A fresh topic: each partition's committed offset is the count of its records, and the counts add up.
    committed = await _committed(kafka_bootstrap, topic, group)
    assert sum(offset or 0 for offset in committed.values()) == len(bodies), committed

    again: list[bytes] = []
    broker, stop = _consumer_app(kafka_bootstrap, topic, group, again)
    await broker.start()
    try:
        await _publish(kafka_bootstrap, topic, [b"after-restart"])
        await _eventually(lambda: b"after-restart" in again)
    finally:
        await broker.stop()
    assert again == [b"after-restart"], "a record handled before the restart was read again"


async def test_a_member_joining_the_group_does_not_read_again_what_the_first_member_handled(
    kafka_bootstrap: str,
) -> None:
    topic, group = f"test.commits.{uuid.uuid4().hex[:8]}", f"commits-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=PARTITIONS)
    bodies = [f"m{n}".encode() for n in range(60)]
    first_seen: list[bytes] = []
    second_seen: list[bytes] = []
    first, _ = _consumer_app(kafka_bootstrap, topic, group, first_seen)
    second, _ = _consumer_app(kafka_bootstrap, topic, group, second_seen)
    await first.start()
    try:
        await _publish(kafka_bootstrap, topic, bodies)
        await _eventually(lambda: len(set(first_seen)) == len(bodies))
        await second.start()  # the group rebalances: the first member gives some partitions away
        try:
            later = [f"later{n}".encode() for n in range(30)]
            await _publish(kafka_bootstrap, topic, later)
            await _eventually(lambda: set(later) <= set(first_seen) | set(second_seen))
        finally:
            await second.stop()
    finally:
        await first.stop()

    assert second_seen, "the second member took no partition: the rebalance was not exercised"
    assert not set(bodies) & set(second_seen), "the new member read records the first had handled"


async def test_handling_a_record_commits_its_own_partition_only(kafka_bootstrap: str) -> None:
    """The durable broker writes one object per committed partition: a record of partition 1 must not rewrite the
    offsets of partitions 0 and 2 (FastStream's own acknowledgement commits every assigned partition)."""
    topic, group = f"test.commits.{uuid.uuid4().hex[:8]}", f"commits-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=PARTITIONS)
    seen: list[bytes] = []
    broker, stop = _consumer_app(kafka_bootstrap, topic, group, seen)
    await broker.start()
    try:
        publisher = make_broker(
            KafkaSettings(bootstrap_servers=kafka_bootstrap), service="commit-test-pub", tracer_provider=None
        )
        await publisher.start()
        try:
            for body in (b"one", b"two"):
                await publisher.publish(body, topic, partition=1)
        finally:
            await publisher.stop()
        await _eventually(lambda: seen == [b"one", b"two"])
        await _eventually_committed(kafka_bootstrap, topic, group, {0: None, 1: 2, 2: None})
    finally:
        await stop()


async def _eventually_committed(
    bootstrap: str, topic: str, group: str, expected: dict[int, int | None], *, within: float = 30.0
) -> None:
    # The commit follows the handler's return: poll the group's offsets until they match, or time out.
    deadline = asyncio.get_running_loop().time() + within
    while (committed := await _committed(bootstrap, topic, group)) != expected:
        assert asyncio.get_running_loop().time() < deadline, committed
        await asyncio.sleep(0.1)
