"""How every service consumes and publishes: one ``subscribe()`` for the consumer settings, typed handlers per topic,
and ``publish_all`` for the messages a use case returns.

A service's ``handlers.py`` is then a routing table::

    consumer = subscribe(router, RECIPES_SAVED, DELIVERIES_OUTCOMES, kafka=settings.kafka, group_id=GROUP,
                         title="association-store:internal", description=...)

    @consumer(filter=on_topic(RECIPES_SAVED))
    async def on_recipe_saved(event: RecipeSaved, ports: Ports) -> None:
        await publish_all(broker, await service.record_recipe_saved(event, ports.tenants, ports.store))

Several topics share one consumer (one group member joins, and rebalances, once per process: on Tansu that is
seconds per member at every start), and each topic still gets FastStream's typed decoding and its own AsyncAPI
message. The consumer settings (group, commit after handling, where a new group starts, poll interval) come from
``consumer_options``; the error taxonomy (``TransientError`` re-read with back-off, anything else dead-lettered)
is the broker's error middleware (``make_broker``), which every subscriber of the broker runs under.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from faststream.kafka.subscriber.usecase import LogicSubscriber

from relay_platform.broker import consumer_options, kafka_error
from relay_platform.errors import TransientError
from relay_platform.outgoing import Outgoing
from relay_platform.settings import KafkaSettings

__all__ = ["Outgoing", "kafka_errors_are_transient", "on_topic", "publish_all", "subscribe", "topic_of"]

P = ParamSpec("P")
R = TypeVar("R")


def subscribe(
    registrar: KafkaBroker | KafkaRouter,
    *topics: str,
    kafka: KafkaSettings,
    group_id: str,
    title: str,
    description: str,
    max_workers: int | None = None,
) -> LogicSubscriber[Any]:
    """One consumer of ``topics`` in ``group_id``, committing each message only after its handler returned.

    ``max_workers`` > 1 runs that many messages at once (FastStream's concurrent subscriber; each partition still
    in order). Attach one handler per topic with ``@consumer(filter=on_topic(TOPIC))``; a single-topic consumer
    may take one handler without a filter.
    """
    if not topics:
        msg = "subscribe() needs at least one topic"
        raise ValueError(msg)
    extra: dict[str, Any] = {} if max_workers is None else {"max_workers": max_workers}
    subscriber: LogicSubscriber[Any] = registrar.subscriber(
        *topics,
        **consumer_options(kafka, group_id),
        **extra,
        title=title,
        description=description,
    )
    return subscriber


def on_topic(*topics: str) -> Callable[[KafkaMessage], Awaitable[bool]]:
    """A handler filter: the message was read from one of ``topics``."""
    wanted = frozenset(topics)

    async def read_from(message: KafkaMessage) -> bool:
        return getattr(message.raw_message, "topic", None) in wanted

    return read_from


def topic_of(message: KafkaMessage) -> str:
    """The topic ``message`` was read from (a consumer of several topics needs it for the tenant of an OMS topic)."""
    return str(getattr(message.raw_message, "topic", ""))


def kafka_errors_are_transient(action: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorates an adapter coroutine so a Kafka client error leaves it as the taxonomy's ``TransientError`` (or
    ``PermanentError`` for a request no retry can fix), named by ``action``."""

    def decorate(call: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(call)
        async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await call(*args, **kwargs)
            except KafkaError as error:
                raise kafka_error(error, action) from error

        return translated

    return decorate


async def publish_all(broker: KafkaBroker, outgoing: Iterable[Outgoing]) -> None:
    """Publish every message pipelined, each awaited to its broker acknowledgement (``acks=all``), before the
    handler returns and the offset is committed. A Kafka error becomes the taxonomy's reading of it
    (``TransientError`` for a broker that may recover: the message is read again and every publish repeated,
    harmless as consumers are idempotent)."""
    pending = list(outgoing)
    if not pending:
        return
    results = await asyncio.gather(
        *(broker.publish(item.message, item.topic, key=item.key) for item in pending), return_exceptions=True
    )
    for item, result in zip(pending, results, strict=True):
        if isinstance(result, KafkaError):
            raise kafka_error(result, f"publishing {item.topic}") from result
        if isinstance(result, OSError | TimeoutError):
            raise TransientError(f"publishing {item.topic} failed: {type(result).__name__}") from result
        if isinstance(result, BaseException):
            raise result
