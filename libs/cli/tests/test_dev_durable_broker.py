"""``relay dev``'s broker keeps its data under ``var/dev/broker``: topics, messages and committed offsets survive
a stop, and a ``var/`` left by the in-memory broker of earlier versions starts cleanly."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from unittest import mock

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from relay_cli.dev import DevStack
from relay_contracts.topics import ALL_TOPICS
from relay_devservers import kafka
from relay_devservers.kafka import BrokerDataInUseError, DurableTansu
from relay_devservers.processes import free_port
from relay_platform.broker import ensure_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
TOPIC = "durable.test.v1"
GROUP = "durable-test"


async def _produce(bootstrap: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(TOPIC, f"m{i}".encode(), key=b"k", partition=0)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, count: int) -> list[str]:
    """Read ``count`` messages as the group and commit them; returns their values."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        committed = await consumer.committed(partition)
        if committed is None:
            await consumer.seek_to_beginning(partition)
        else:
            consumer.seek(partition, committed)
        values: list[str] = []
        while len(values) < count:
            batches = await consumer.getmany(partition, timeout_ms=5_000, max_records=count - len(values))
            assert batches, f"only {values} within 5 s"
            values += [(m.value or b"").decode() for m in batches[partition]]
        await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def test_topics_messages_offsets_and_the_port_survive_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "broker"
    with socket.socket() as taken:
        # A stand-in for 9092 held by another program (the real 9092 is left alone: a developer may be using it).
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        default: int = taken.getsockname()[1]
        monkeypatch.setattr(kafka, "KAFKA_DEFAULT_PORT", default)

        first = DurableTansu(data).start()
        credentials = json.loads((data / "state.json").read_text())
        try:
            await ensure_topics(first.bootstrap, (TOPIC,), partitions=1)
            await _produce(first.bootstrap, 6)
            assert await _consume(first.bootstrap, 2) == ["m0", "m1"]
        finally:
            first.stop()

        second = DurableTansu(data).start()
        try:
            # Same port (9092 being taken), and the group carries on after what it committed.
            assert second.bootstrap == first.bootstrap != f"127.0.0.1:{default}"
            assert await _consume(second.bootstrap, 4) == ["m2", "m3", "m4", "m5"]
        finally:
            second.stop()
    # The credentials are made once per directory, and only the owner can read them.
    state = json.loads((data / "state.json").read_text())
    assert (state["access_key"], state["secret_key"]) == (credentials["access_key"], credentials["secret_key"])
    assert stat.S_IMODE((data / "state.json").stat().st_mode) == 0o600


def test_a_second_broker_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = DurableTansu(tmp_path / "broker", port=free_port()).start()
    try:
        with pytest.raises(BrokerDataInUseError):
            DurableTansu(tmp_path / "broker", port=free_port()).start()
        assert first.broker is not None
        assert first.broker.server is not None
        assert first.broker.server.alive()
    finally:
        first.stop()


# A key an earlier version generated (token_urlsafe(32)): kept, so links already sent keep working.
OLD_KEY = "Gm3Yx0kq2c9wKQeXb7v1fT4rJp8sNd6ZhLa5uEoIcWy"


class QuietStack(DevStack):
    def say(self, source: str, line: str, colour: str = "1") -> None:
        pass


async def test_dev_stack_starts_on_a_var_left_by_the_in_memory_broker(tmp_path: Path) -> None:
    """What earlier versions left in ``var/``: logs of a memory broker, databases, demo secrets, no broker data."""
    var = tmp_path / "var"
    (var / "dev" / "logs").mkdir(parents=True)
    (var / "dev" / "logs" / "tansu-9092.log").write_text("INFO tansu: memory storage\n")
    (var / "dev" / "demo-secrets.json").write_text("{}")
    (var / "dev" / "link-signing-key").write_text(OLD_KEY)
    (var / "association-store.db").write_bytes(b"")
    port = free_port()
    stack = QuietStack(root=ROOT, var=var, api_port=free_port(), demo=False, broker_port=port)
    try:
        with mock.patch.dict(os.environ):
            os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
            await stack.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        await consumer.start()
        try:
            assert set(ALL_TOPICS) <= await consumer.topics()
        finally:
            await consumer.stop()
    finally:
        await stack.stop()
    assert (var / "dev" / "broker" / "state.json").is_file()
    assert (var / "dev" / "link-signing-key").read_text() == OLD_KEY
