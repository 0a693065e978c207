"""``relay dlq``: inspect and replay ``deliveries.dead.v1``.

Reads by assigning every partition and starting at the beginning (no consumer group: nothing is committed, nobody
else's position moves). Listings never show payloads: they may hold order data. Replays re-publish the original
bytes to the original topic with the original key, ``acks=all``, one confirmation at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from relay_contracts.messages import MessageDeadLettered
from relay_contracts.topics import ALL_TOPICS, DELIVERIES_DEAD

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
REPLAYED_FROM_HEADER = "relay-replayed-from"
_METADATA_WAIT_S = 15.0


class DlqError(Exception):
    """A dead-letter operation that cannot be done; the message says why (never a payload)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic; ``message`` is ``None`` when the record is not a readable
    ``MessageDeadLettered`` (``problem`` says why)."""

    partition: int
    offset: int
    timestamp_ms: int
    message: MessageDeadLettered | None
    problem: str | None = None

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def time(self) -> datetime:
        if self.message is not None:
            moment = self.message.dead_lettered_at
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def source_topic(self) -> str:
        return self.message.source_topic if self.message is not None else ""


@dataclass(frozen=True, slots=True)
class Replayed:
    position: str
    topic: str
    key: str | None
    size: int
    partition: int
    offset: int


def parse_position(text: str) -> tuple[int, int]:
    """``PARTITION:OFFSET`` (as printed by ``relay dlq list``)."""
    partition, sep, offset = text.strip().partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (e.g. 0:42)")
    return int(partition), int(offset)


def _decode(partition: int, offset: int, timestamp_ms: int, value: bytes | None) -> DeadLetter:
    try:
        message = MessageDeadLettered.model_validate_json(value or b"")
    except ValidationError as error:
        problem = f"not a dead-letter record ({error.error_count()} problem(s))"
        return DeadLetter(partition, offset, timestamp_ms, None, problem)
    return DeadLetter(partition, offset, timestamp_ms, message)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    try:
        async with asyncio.timeout(_METADATA_WAIT_S):
            while not (partitions := consumer.partitions_for_topic(topic)):
                await consumer.client.force_metadata_update()
                if not consumer.partitions_for_topic(topic):
                    await asyncio.sleep(0.2)
    except TimeoutError as error:
        raise DlqError(f"topic {topic} not found on the broker") from error
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_dead_letters(
    bootstrap: str, *, topic: str = DELIVERIES_DEAD, timeout_s: float = 60.0
) -> list[DeadLetter]:
    """Every record of the dead-letter topic as it stands now, oldest first (by partition and offset)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="relay-cli-dlq",
        request_timeout_ms=15_000,
    )
    try:
        await consumer.start()
    except (KafkaError, OSError) as error:
        await consumer.stop()
        raise DlqError(f"cannot connect to the broker at {bootstrap}: {type(error).__name__}") from error
    letters: list[DeadLetter] = []
    try:
        async with asyncio.timeout(timeout_s):
            assigned = await _partitions(consumer, topic)
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            # Read up to the end as it is now: records arriving meanwhile wait for the next listing.
            ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
            remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, records in batches.items():
                    letters.extend(
                        _decode(r.partition, r.offset, r.timestamp, r.value) for r in records if r.offset < ends[tp]
                    )
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    except TimeoutError as error:
        raise DlqError(f"reading {topic} took longer than {timeout_s:.0f} s") from error
    except KafkaError as error:
        raise DlqError(f"reading {topic} failed: {type(error).__name__}") from error
    finally:
        await consumer.stop()
    return letters


def matches_topic(source_topic: str, topic_filter: str | None) -> bool:
    """A glob (``deliveries.requested.*``) when it has wildcards, else a substring of the source topic."""
    if not topic_filter:
        return True
    if any(c in topic_filter for c in "*?["):
        return fnmatch.fnmatchcase(source_topic, topic_filter)
    return topic_filter in source_topic


def newest(letters: Iterable[DeadLetter], *, limit: int | None, topic_filter: str | None = None) -> list[DeadLetter]:
    """The ``limit`` newest dead letters whose source topic matches, oldest of them first."""
    chosen = sorted(
        (d for d in letters if matches_topic(d.source_topic, topic_filter)),
        key=lambda d: (d.time, d.partition, d.offset),
    )
    return chosen if limit is None else chosen[-limit:] if limit > 0 else []


async def list_dead_letters(
    bootstrap: str, *, limit: int | None = 50, topic_filter: str | None = None
) -> list[DeadLetter]:
    return newest(await read_dead_letters(bootstrap), limit=limit, topic_filter=topic_filter)


def summary(text: str, width: int) -> str:
    """One line, at most ``width`` characters (for table cells)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def _replay_target(letter: DeadLetter, oms_topics: Collection[str]) -> tuple[str, bytes, bytes | None]:
    message = letter.message
    if message is None:
        raise DlqError(f"{letter.position} cannot be replayed: {letter.problem}")
    topic = message.source_topic
    if (topic not in ALL_TOPICS and topic not in oms_topics) or topic == DELIVERIES_DEAD:
        raise DlqError(
            f"{letter.position} cannot be replayed: its source topic is neither a Recipe Relay topic nor the OMS "
            "topic of a tenant in the tenant file"
        )
    if not message.payload_complete:
        raise DlqError(
            f"{letter.position} cannot be replayed: its payload was not kept (not a JSON object, or too large); "
            f"match it by size {message.payload_size} and SHA-256 {message.payload_sha256}"
        )
    try:
        payload = base64.b64decode(message.payload_b64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DlqError(f"{letter.position} cannot be replayed: payloadB64 is not base64") from error
    key = message.key.encode() if message.key is not None else None
    return message.source_topic, payload, key


def choose(
    letters: Sequence[DeadLetter],
    positions: Sequence[tuple[int, int]] = (),
    *,
    replay_all: bool = False,
    source_topic: str | None = None,
) -> list[DeadLetter]:
    """The dead letters to replay: the named positions (each must exist), or all of them (of ``source_topic``)."""
    if bool(positions) == replay_all:
        raise DlqError("name PARTITION:OFFSET positions or --all (one of the two)")
    if replay_all:
        return [d for d in letters if source_topic is None or d.source_topic == source_topic]
    by_position = {(d.partition, d.offset): d for d in letters}
    missing = [f"{p}:{o}" for p, o in positions if (p, o) not in by_position]
    if missing:
        raise DlqError(f"no dead letter at {', '.join(missing)}")
    if source_topic is not None:
        raise DlqError("--source-topic goes with --all only")
    return [by_position[p] for p in dict.fromkeys(positions)]


async def replay(bootstrap: str, letters: Sequence[DeadLetter], *, oms_topics: Collection[str] = ()) -> list[Replayed]:
    """Re-publish each dead letter's original payload to its source topic with its original key (acks=all).

    A source topic must be one of Recipe Relay's or one of ``oms_topics`` (the tenants' OMS topics: replaying to
    one needs WRITE on it, as the tenant's OMS has). Every letter is checked before the first publish, so a bad
    one replays nothing."""
    targets = [(letter, *_replay_target(letter, oms_topics)) for letter in letters]
    if not targets:
        return []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="relay-cli-dlq")
    try:
        await producer.start()
    except (KafkaError, OSError) as error:
        await producer.stop()
        raise DlqError(f"cannot connect to the broker at {bootstrap}: {type(error).__name__}") from error
    replayed: list[Replayed] = []
    try:
        for letter, topic, payload, key in targets:
            origin = f"{DELIVERIES_DEAD}:{letter.position}".encode()
            try:
                metadata = await producer.send_and_wait(
                    topic, payload, key=key, headers=[(REPLAYED_FROM_HEADER, origin)]
                )
            except KafkaError as error:
                done = ", ".join(r.position for r in replayed) or "none"
                raise DlqError(
                    f"replaying {letter.position} failed ({type(error).__name__}); already replayed: {done}"
                ) from error
            replayed.append(
                Replayed(
                    position=letter.position,
                    topic=topic,
                    key=key.decode(errors="replace") if key is not None else None,
                    size=len(payload),
                    partition=metadata.partition,
                    offset=metadata.offset,
                )
            )
    finally:
        await producer.stop()
    return replayed
