"""Publishes events with a plain aiokafka producer (acks=all), the W3C ``traceparent`` of the request injected.

FastStream's per-message publish path (middlewares, serializer) costs ~5x the producer's own work; the API
publishes up to 1,000 records per request, so it hands records straight to the producer, which batches them.

The broker connects in the background so the API starts (and answers 503) while Kafka is down; every
publish is bounded by a deadline so a lost broker becomes a quick 503, never a hung request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from opentelemetry import propagate

from relay_ingest_api.ports import Outgoing
from relay_platform.broker import producer_options
from relay_platform.errors import TransientError, error_class_name
from relay_platform.settings import KafkaSettings

logger = logging.getLogger("relay.ingest_api.kafka")

_FIRST_BACKOFF_S = 0.2
_MAX_BACKOFF_S = 5.0


def _bootstrap_addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    addresses = []
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        addresses.append((host.strip("[]") or "127.0.0.1", int(port or 9092)))
    return addresses


async def _any_reachable(addresses: list[tuple[str, int]], timeout_s: float) -> bool:
    """A plain TCP probe first: a failed aiokafka start leaks an unclosed producer each time it is retried."""
    for host, port in addresses:
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


def _retrieve(future: asyncio.Future[RecordMetadata]) -> None:
    # A confirmation that arrives after we gave up: mark its error retrieved so asyncio does not log it.
    if not future.cancelled():
        future.exception()


class EventPublisher:
    """Pipelined, bounded publishing: issue every send, then await all confirmations (acks=all).
    Implements ``ports.Publisher``."""

    def __init__(self, kafka: KafkaSettings, *, service: str, publish_timeout_s: float, retry_after_s: int) -> None:
        self._options = producer_options(kafka, service=service)
        self._producer: AIOKafkaProducer | None = None
        self._addresses = _bootstrap_addresses(kafka.bootstrap_servers)
        self._publish_timeout_s = publish_timeout_s
        self._retry_after_s = retry_after_s
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._task = asyncio.create_task(self._connect_until_up(), name="kafka-connect")

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def _connect_until_up(self) -> None:
        delay = _FIRST_BACKOFF_S
        while True:
            if await _any_reachable(self._addresses, timeout_s=2.0):
                producer = AIOKafkaProducer(**self._options)
                try:
                    await producer.start()
                except asyncio.CancelledError:
                    # The API is closing while it connects: a producer left half-started leaks its connections.
                    await producer.stop()
                    raise
                except (KafkaError, OSError, TimeoutError) as error:
                    await producer.stop()
                    logger.warning("cannot connect to the broker yet: %s", error_class_name(error))
                else:
                    self._producer = producer
                    self._connected.set()
                    logger.info("connected to the broker")
                    return
            else:
                logger.warning("broker not reachable yet; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def ping(self, timeout_s: float) -> bool:
        """True when the cluster answers a metadata request within ``timeout_s``."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    def _unavailable(self, reason: str) -> TransientError:
        return TransientError(f"event broker unavailable: {reason}", retry_after_s=self._retry_after_s)

    async def _issue(self, records: Sequence[Outgoing], deadline: float) -> list[asyncio.Future[RecordMetadata]]:
        """Hand every record to the producer (it batches them); returns their confirmation futures."""
        producer = self._producer
        if producer is None:
            raise self._unavailable("not connected")
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the request's span: one order is one trace, from HTTP to the deliverers
        headers = [("content-type", b"application/json"), *((k, v.encode()) for k, v in carrier.items())]
        futures: list[asyncio.Future[RecordMetadata]] = []
        try:
            async with asyncio.timeout_at(deadline):
                for record in records:
                    # The serializer's bytes as they are: model_dump_json() decodes them to str, then .encode()
                    # copies them back, per record.
                    message = record.message
                    value = type(message).__pydantic_serializer__.to_json(message)
                    futures.append(await producer.send(record.topic, value, key=record.key, headers=headers))
        except TimeoutError as error:
            self._abandon(futures)
            raise self._unavailable("timed out sending") from error
        except KafkaError as error:
            self._abandon(futures)
            raise self._unavailable(error_class_name(error)) from error
        return futures

    @staticmethod
    def _abandon(futures: list[asyncio.Future[RecordMetadata]]) -> None:
        for future in futures:
            future.add_done_callback(_retrieve)

    def ensure_connected(self) -> None:
        """Fail fast (503) before doing work whose announcement could not be published anyway."""
        if not self.connected:
            raise self._unavailable("not connected")

    async def publish(self, records: Sequence[Outgoing]) -> None:
        """Publish all ``records`` durably within the deadline, or raise ``TransientError``."""
        self.ensure_connected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout_s
        futures = await self._issue(records, deadline)
        if not futures:
            return
        # asyncio.wait never cancels the confirmations: late ones are left to finish on their own.
        done, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        self._abandon(list(pending))
        failed = [f.exception() for f in done]
        failures = [e for e in failed if e is not None]
        if pending:
            raise self._unavailable(f"{len(pending)} of {len(futures)} publishes not confirmed in time")
        if failures:
            raise self._unavailable(f"{len(failures)} publishes failed ({error_class_name(failures[0])})")
