"""``relay dlq list`` / ``relay dlq replay`` against a real Tansu broker."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from typer.testing import CliRunner, Result

from relay_cli import dlq
from relay_cli.main import app
from relay_contracts.messages import DeliverBundle, MessageDeadLettered
from relay_contracts.topics import ALL_TOPICS, DELIVERIES_DEAD, ORDERS_EVENTS, deliveries_requested
from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import free_port
from relay_platform.broker import ensure_topics

pytestmark = pytest.mark.integration

EMAIL_TOPIC = deliveries_requested("email")
SENSITIVE = "jane.doe@example.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _bundle(recipe_id: str) -> bytes:
    return (
        DeliverBundle(
            delivery_id=f"d-{recipe_id}",
            trigger_id=f"t-{recipe_id}",
            tenant="demo",
            integration_id="email-ops",
            integration_type="email",
            recipe_id=recipe_id,
            feed="order",
            reason="order_linked",
            requested_at=NOW,
        )
        .model_dump_json()
        .encode()
    )


def _dead(
    source_topic: str, payload: bytes, key: str | None, reason: str, service: str = "retry"
) -> MessageDeadLettered:
    return MessageDeadLettered(
        source_topic=source_topic,
        key=key,
        service=service,
        reason=reason,
        error_class="DeliveryFailed",
        payload_b64=base64.b64encode(payload).decode(),
        dead_lettered_at=datetime.now(UTC),
    )


async def _publish_dead(bootstrap: str, letters: Sequence[MessageDeadLettered]) -> list[str]:
    """Publish dead letters as the services do; returns their ``partition:offset`` positions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        positions = []
        for letter in letters:
            key = letter.key.encode() if letter.key else None
            metadata = await producer.send_and_wait(DELIVERIES_DEAD, letter.model_dump_json().encode(), key=key)
            positions.append(f"{metadata.partition}:{metadata.offset}")
        return positions
    finally:
        await producer.stop()


class Tail:
    """Reads ``topic`` from its current end by partition assignment."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.records: list[ConsumerRecord] = []

    async def __aenter__(self) -> Tail:
        await self.consumer.start()
        async with asyncio.timeout(20):
            while not (partitions := self.consumer.partitions_for_topic(self.topic)):
                await self.consumer.client.force_metadata_update()
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        for tp in assigned:
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for_keys(self, keys: set[bytes], timeout_s: float = 20) -> dict[bytes, ConsumerRecord]:
        async with asyncio.timeout(timeout_s):
            while not keys <= {r.key for r in self.records}:
                for records in (await self.consumer.getmany(timeout_ms=200)).values():
                    self.records.extend(records)
        return {r.key: r for r in self.records if r.key in keys}


async def _relay(args: Sequence[str]) -> Result:
    # The command runs its own event loop (asyncio.run), so it runs in a thread.
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args))

    return await asyncio.to_thread(invoke)


def _plain(output: str) -> str:
    """Output without the error panel's box drawing and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by their first column (the position)."""
    return {line.split()[0]: line.split() for line in output.splitlines()[2:] if line and line[0].isdigit()}


async def test_list_shows_one_row_per_dead_letter_without_the_payload(kafka_bootstrap: str) -> None:
    marker = uuid.uuid4().hex[:10]
    payload = _bundle(f"999-{marker}") + SENSITIVE.encode()
    long_reason = f"{marker} smtp 550 mailbox unavailable " + "x" * 200
    email_at, orders_at = await _publish_dead(
        kafka_bootstrap,
        [
            _dead(EMAIL_TOPIC, payload, f"999-{marker}", long_reason),
            _dead(ORDERS_EVENTS, b"{not json", f"demo:{marker}", f"{marker} invalid message", "association-store"),
        ],
    )

    result = await _relay(["dlq", "list", "--limit", "100000", "--bootstrap", kafka_bootstrap])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    email = rows[email_at]
    assert email[2:5] == [EMAIL_TOPIC, "retry", "DeliveryFailed"]
    assert email[5] == marker
    line = next(line for line in result.output.splitlines() if line.startswith(email_at + " "))
    assert line.endswith("…")
    assert len(line.split("DeliveryFailed", 1)[1].strip()) == 60
    assert rows[orders_at][2:4] == [ORDERS_EVENTS, "association-store"]
    assert SENSITIVE not in result.output
    assert base64.b64encode(payload).decode()[:40] not in result.output

    filtered = await _relay(["dlq", "list", "--topic-filter", "requested", "--bootstrap", kafka_bootstrap])
    assert filtered.exit_code == 0, filtered.output
    assert email_at in _rows(filtered.output)
    assert orders_at not in _rows(filtered.output)


async def test_replay_republishes_the_original_payload_with_its_key_to_the_source_topic(
    kafka_bootstrap: str,
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    payload = _bundle(recipe_id)
    (position,) = await _publish_dead(kafka_bootstrap, [_dead(EMAIL_TOPIC, payload, recipe_id, "gave up")])

    async with Tail(kafka_bootstrap, EMAIL_TOPIC) as tail:
        result = await _relay(["dlq", "replay", position, "--bootstrap", kafka_bootstrap])
        assert result.exit_code == 0, result.output
        record = (await tail.wait_for_keys({recipe_id.encode()}))[recipe_id.encode()]
    assert record.value == payload
    assert (dlq.REPLAYED_FROM_HEADER, f"{DELIVERIES_DEAD}:{position}".encode()) in list(record.headers)
    (row,) = [line.split() for line in result.output.splitlines() if line.startswith(position + " ")]
    assert row[:4] == [position, EMAIL_TOPIC, recipe_id, str(len(payload))]
    assert "1 dead letter(s) replayed" in result.output


async def test_replay_of_an_unknown_position_fails_and_replays_nothing(kafka_bootstrap: str) -> None:
    result = await _relay(["dlq", "replay", "0:999999999", "--bootstrap", kafka_bootstrap])
    assert result.exit_code == 1
    assert "no dead letter at 0:999999999" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dlq", "replay"], "PARTITION:OFFSET positions or --all"),
        (["dlq", "replay", "0:1", "--all"], "PARTITION:OFFSET positions or --all"),
        (["dlq", "replay", "zero:1"], "is not PARTITION:OFFSET"),
        (["dlq", "replay", "0:1", "--source-topic", EMAIL_TOPIC], "--source-topic goes with --all"),
    ],
)
async def test_replay_arguments_are_checked_before_reading(args: list[str], message: str) -> None:
    result = await _relay([*args, "--bootstrap", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 2
    assert message in _plain(result.output)


async def test_unreachable_broker_exits_non_zero_with_a_message() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    result = await _relay(["dlq", "list", "--bootstrap", bootstrap])
    assert result.exit_code == 1
    assert f"cannot connect to the broker at {bootstrap}" in result.output


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private broker: ``--all`` must not replay other tests' dead letters into the shared one."""
    broker = TansuBroker(tmp_path_factory.mktemp("dlq-all")).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, ALL_TOPICS, partitions=2))
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
async def dead_on_own_broker(own_broker: str) -> dict[str, bytes]:
    payloads = {f"999-all-{n}": _bundle(f"999-all-{n}") for n in range(3)}
    letters = [_dead(EMAIL_TOPIC, body, key, "gave up") for key, body in payloads.items()]
    letters.append(_dead(ORDERS_EVENTS, b'{"eventId": "x"}', "demo:o-1", "invalid message", "association-store"))
    letters.append(_dead(DELIVERIES_DEAD, b"loop", "k", "never replay into the dead-letter topic"))
    await _publish_dead(own_broker, letters)
    return payloads


async def test_replay_all_of_one_source_topic_republishes_each_of_them(
    own_broker: str, dead_on_own_broker: dict[str, bytes]
) -> None:
    async with Tail(own_broker, EMAIL_TOPIC) as email_tail:
        result = await _relay(["dlq", "replay", "--all", "--source-topic", EMAIL_TOPIC, "--bootstrap", own_broker])
        assert result.exit_code == 0, result.output
        records = await email_tail.wait_for_keys({k.encode() for k in dead_on_own_broker})
    assert {k.decode(): r.value for k, r in records.items()} == dead_on_own_broker
    assert "3 dead letter(s) replayed" in result.output

    # --all over every source topic refuses as a whole when one letter points at the dead-letter topic itself.
    everything = await _relay(["dlq", "replay", "--all", "--bootstrap", own_broker])
    assert everything.exit_code == 1
    assert "its source topic is neither a Recipe Relay topic nor the OMS topic" in everything.output


def test_newest_keeps_the_latest_matching_letters_oldest_first() -> None:
    def letter(offset: int, topic: str, minutes: int) -> dlq.DeadLetter:
        message = _dead(topic, b"x", None, "r").model_copy(
            update={"dead_lettered_at": NOW + timedelta(minutes=minutes)}
        )
        return dlq.DeadLetter(partition=0, offset=offset, timestamp_ms=0, message=message)

    letters = [letter(0, EMAIL_TOPIC, 5), letter(1, ORDERS_EVENTS, 1), letter(2, deliveries_requested("s3"), 3)]
    assert [d.offset for d in dlq.newest(letters, limit=2)] == [2, 0]
    assert [d.offset for d in dlq.newest(letters, limit=None, topic_filter="deliveries.requested.*")] == [2, 0]
    assert [d.offset for d in dlq.newest(letters, limit=5, topic_filter="orders")] == [1]


async def test_unreadable_dead_letter_is_listed_but_not_replayable() -> None:
    unreadable = dlq.DeadLetter(partition=1, offset=7, timestamp_ms=1_700_000_000_000, message=None, problem="bad")
    assert dlq.newest([unreadable], limit=1) == [unreadable]
    assert dlq.choose([unreadable], [(1, 7)]) == [unreadable]
    with pytest.raises(dlq.DlqError, match="1:7 cannot be replayed: bad"):
        await dlq.replay(f"127.0.0.1:{free_port()}", [unreadable])


async def test_a_letter_whose_payload_was_not_kept_is_listed_but_not_replayable() -> None:
    kept_nothing = _dead(ORDERS_EVENTS, b"", "acme:o-1", "invalid message").model_copy(
        update={"payload_complete": False, "payload_size": 900_000, "payload_sha256": "ab" * 32}
    )
    letter = dlq.DeadLetter(partition=0, offset=3, timestamp_ms=1_700_000_000_000, message=kept_nothing)
    with pytest.raises(dlq.DlqError, match=r"0:3 cannot be replayed: its payload was not kept .* size 900000"):
        await dlq.replay(f"127.0.0.1:{free_port()}", [letter])


async def test_a_letter_from_a_tenants_oms_topic_is_replayable_only_when_the_tenant_file_names_it() -> None:
    from_oms = _dead("oms.acme.orders.v1", b'{"eventId":"e1"}', "o-1", "association store unavailable")
    letter = dlq.DeadLetter(partition=0, offset=4, timestamp_ms=1_700_000_000_000, message=from_oms)
    unreachable = f"127.0.0.1:{free_port()}"
    with pytest.raises(dlq.DlqError, match="0:4 cannot be replayed: its source topic is neither"):
        await dlq.replay(unreachable, [letter])
    with pytest.raises(dlq.DlqError, match="0:4 cannot be replayed"):
        await dlq.replay(unreachable, [letter], oms_topics=("oms.globex.orders.v1",))
    # Named by the tenant file: accepted, so the replay gets as far as the (here unreachable) broker.
    with pytest.raises(dlq.DlqError, match="cannot connect to the broker"):
        await dlq.replay(unreachable, [letter], oms_topics=("oms.acme.orders.v1",))
