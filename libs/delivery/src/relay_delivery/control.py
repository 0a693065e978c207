"""The reader of ``integrations.control.v1``: every deliverer process reads it whole and keeps, per (tenant,
integration), the change with the newest ``changedAt`` (in ``states.IntegrationStates``).

No consumer group: each replica needs every integration's state, not a share of the partitions, and nothing is
committed (a restart reads the topic again from the beginning; it is small, and keyed so it can be compacted).
Until the reader has reached the end offsets it saw at start, ``IntegrationStates.wait_caught_up`` keeps the consume
path from attempting anything: a request for an integration paused an hour ago must not slip through after a
restart. That wait is bounded (``DelivererSettings.control_catch_up_s``); past it the deliverer goes on with what it
has read, with a WARNING, rather than stop delivering for every integration because the control topic is slow.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from relay_contracts.messages import IntegrationStateChanged
from relay_contracts.topics import INTEGRATIONS_CONTROL
from relay_delivery.states import IntegrationStates
from relay_platform.broker import producer_options
from relay_platform.errors import error_class_name
from relay_platform.settings import KafkaSettings

logger = logging.getLogger("relay.delivery.control")

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 30.0
_FETCH_TIMEOUT_MS = 1000


class ControlReader:
    """The background task that keeps ``states`` current: reads ``topic`` from the beginning and keeps reading.

    A malformed record is logged (position only, no payload) and skipped. A broker failure closes the consumer and
    starts again after a back-off (doubling up to 30 s) from where it had read; the states kept meanwhile stay in
    force. ``in_memory()`` (tests on FastStream's in-memory broker) makes ``run`` return at once, caught up: the
    test feeds ``states`` itself.
    """

    def __init__(
        self, kafka: KafkaSettings, states: IntegrationStates, *, service: str, topic: str = INTEGRATIONS_CONTROL
    ) -> None:
        self.states = states
        self.topic = topic
        self._kafka = kafka
        self._service = service
        self._positions: dict[TopicPartition, int] = {}
        self._disabled = False

    def in_memory(self) -> None:
        """No broker to read: ``run`` returns at once and the states count as caught up."""
        self._disabled = True
        self.states.mark_caught_up()

    async def run(self) -> None:
        backoff = _BACKOFF_START_S
        while not self._disabled:
            consumer = AIOKafkaConsumer(**self._consumer_options())
            try:
                await consumer.start()
                await self._read(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: keep the states, read again later
                logger.warning(
                    "reading %s failed (%s); trying again in %gs with the states read so far",
                    self.topic,
                    error_class_name(error),
                    backoff,
                )
            else:
                backoff = _BACKOFF_START_S
            finally:
                await consumer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def _consumer_options(self) -> dict[str, Any]:
        # The producer's connection and security options, without what only a producer takes.
        options = producer_options(self._kafka, service=f"{self._service}-control")
        for producer_only in ("acks", "max_batch_size"):
            options.pop(producer_only, None)
        return options | {
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": self._kafka.fetch_max_wait_ms,
        }

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await self._partitions(consumer)
        consumer.assign(partitions)
        for tp in partitions:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        ends: dict[TopicPartition, int] | None = None
        if not self.states.caught_up:
            ends = await consumer.end_offsets(partitions)
        while True:
            if ends is not None and all(self._positions.get(tp, 0) >= end for tp, end in ends.items()):
                ends = None
                self.states.mark_caught_up()
                logger.info("%s read up to its end: %d partitions", self.topic, len(partitions))
            batches = await consumer.getmany(*partitions, timeout_ms=_FETCH_TIMEOUT_MS)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record.partition, record.offset, record.value)
                    self._positions[tp] = record.offset + 1
            if ends is not None:
                # Offsets past the last record (transaction markers, compacted gaps) count as read.
                for tp in ends:
                    self._positions[tp] = max(self._positions.get(tp, 0), await consumer.position(tp))

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # The topic is made by ``ensure_topics``; until it exists there is nothing to read (and nothing paused).
        backoff = _BACKOFF_START_S
        while not (found := consumer.partitions_for_topic(self.topic)):
            await consumer.client.force_metadata_update()
            if consumer.partitions_for_topic(self.topic):
                continue
            logger.warning("topic %s not found yet; looking again in %gs", self.topic, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
        return [TopicPartition(self.topic, partition) for partition in sorted(found)]

    def _apply(self, partition: int, offset: int, value: bytes | None) -> None:
        try:
            change = IntegrationStateChanged.model_validate_json(value or b"")
        except ValidationError as error:
            # Position and problem count only: the payload is not ours to log.
            logger.warning(
                "skipped malformed record %s:%d:%d (%d problems)",
                self.topic,
                partition,
                offset,
                error.error_count(),
            )
            return
        if self.states.apply(change):
            logger.info(
                "integration %s/%s %s (at %s)",
                change.tenant,
                change.integration_id,
                change.state,
                change.changed_at.isoformat(),
            )
