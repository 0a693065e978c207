"""Committing a handled record's own partition, not every partition its consumer holds.

FastStream acknowledges a message with ``consumer.commit()``, which commits the position of every partition assigned
to that consumer. A Kafka broker takes that as one request; Tansu on object storage (``make run``'s durable broker)
writes one object per partition in it, plus the group state. A consumer of two 3-partition topics thus wrote seven
objects per message, the largest single share of the broker's cost per order (``bench/broker_storage_ops.py``).

The parser below hands FastStream a message whose ``ack`` commits ``{record's partition: offset + 1}`` only, still
after the handler returned and its outcomes were published (the commit-after-publish rule is unchanged): partitions
in order, one commit per handled record, so a committed offset never passes a record that was not handled. Other
partitions keep their own last commit, written when their own records were handled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from faststream.kafka.message import KafkaAckableMessage
from faststream.message import StreamMessage

logger = logging.getLogger("relay.commits")

Parse = Callable[[ConsumerRecord[Any, Any]], Awaitable[StreamMessage[Any]]]


class PartitionCommitMessage(KafkaAckableMessage):
    """A consumed record whose acknowledgement commits its own partition only."""

    async def ack(self) -> None:
        record = self.raw_message
        if self.committed or not isinstance(self.consumer, AIOKafkaConsumer) or isinstance(record, tuple):
            # FastStream's in-memory test broker and batch subscribers keep FastStream's own commit.
            await super().ack()
            return
        partition = TopicPartition(record.topic, record.partition)
        try:
            await self.consumer.commit({partition: record.offset + 1})
        except IllegalStateError:
            # The partition was revoked while the handler ran: its new owner reads the record again from the last
            # commit, and handling is idempotent. Nothing else to do here.
            logger.info("partition %s[%d] revoked before its commit; its new owner re-reads it", *partition)
        await StreamMessage.ack(self)


async def partition_commit_parser(record: ConsumerRecord[Any, Any], parse: Parse) -> StreamMessage[Any]:
    """FastStream's own parsing, with the acknowledgement above (a subscriber's ``parser=``)."""
    message = await parse(record)
    if type(message) is KafkaAckableMessage:
        # Same fields, same layout: only the acknowledgement differs.
        message.__class__ = PartitionCommitMessage
    return message
