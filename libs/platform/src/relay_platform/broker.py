"""The Kafka broker factory: tracing, the error middleware and safe producer defaults in one place."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import ContextRepo
from faststream.exceptions import IgnoredException
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.middlewares import BaseMiddleware
from faststream.security import SASLPlaintext
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from relay_contracts.messages import MessageDeadLettered
from relay_contracts.topics import ALL_TOPICS, DELIVERIES_DEAD
from relay_platform.errors import PermanentError, TransientError, error_class_name
from relay_platform.settings import KafkaSettings

logger = logging.getLogger("relay.broker")

DEAD_LETTER_REASON_HEADER = "x-relay-dead-letter-reason"


class ErrorMiddlewareFactory:
    """Builds the per-message middleware that applies the error taxonomy to every subscriber.

    - ``TransientError``: re-raised after a pause, so the ``NACK_ON_ERROR`` ack policy seeks back and the
      same message is read again (nothing is committed past it).
    - ``PermanentError``, undecodable or invalid messages, and anything unclassified: the raw message goes to
      ``deliveries.dead.v1`` with its reason, then the offset is committed so the consumer goes on.
    """

    def __init__(self, service: str, transient_backoff_s: float) -> None:
        self.service = service
        self.transient_backoff_s = transient_backoff_s
        self.broker: KafkaBroker | None = None

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware[Any, Any]:
        return _ErrorMiddleware(msg, context=context, factory=self)


class _ErrorMiddleware(BaseMiddleware[Any, Any]):
    def __init__(self, msg: Any, /, *, context: ContextRepo, factory: ErrorMiddlewareFactory) -> None:
        super().__init__(msg, context=context)
        self._factory = factory

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,  # noqa: ARG002 - FastStream's hook signature
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,  # noqa: ARG002
    ) -> bool | None:
        if exc_val is None or not isinstance(exc_val, Exception) or isinstance(exc_val, IgnoredException):
            return False
        record = self.msg
        where = f"{getattr(record, 'topic', '?')}[{getattr(record, 'partition', '?')}]@{getattr(record, 'offset', '?')}"
        if isinstance(exc_val, TransientError):
            logger.warning("transient failure on %s, will re-read: %s: %s", where, error_class_name(exc_val), exc_val)
            await asyncio.sleep(exc_val.retry_after_s or self._factory.transient_backoff_s)
            return False
        if isinstance(exc_val, PermanentError):
            reason = str(exc_val)
        elif isinstance(exc_val, ValidationError):
            reason = "invalid message: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc_val.errors(include_url=False)
            )
        else:
            logger.error("unclassified error on %s; dead-lettering", where, exc_info=exc_val)
            reason = f"unexpected {error_class_name(exc_val)} while processing"
        try:
            await self._dead_letter(record, reason, error_class_name(exc_val))
        except KafkaError as error:
            # Could not park it: leave it uncommitted and read it again rather than lose it.
            logger.warning("dead-letter publish failed for %s: %s", where, error)
            await asyncio.sleep(self._factory.transient_backoff_s)
            return False
        logger.warning("dead-lettered %s: %s", where, reason)
        return True

    def _consumer_group(self) -> str | None:
        # The raw record does not name its group; the decoded message holds the consumer that read it.
        message = self.context.get_local("message")
        group = getattr(getattr(message, "consumer", None), "_group_id", None)
        return group if isinstance(group, str) else None

    async def _dead_letter(self, record: Any, reason: str, error_class: str) -> None:
        broker = self._factory.broker
        if broker is None:
            msg = "error middleware used before bind_broker()"
            raise RuntimeError(msg)
        value = getattr(record, "value", b"") or b""
        if isinstance(value, str):
            value = value.encode()
        key = getattr(record, "key", None)
        dead = MessageDeadLettered(
            source_topic=str(getattr(record, "topic", "")),
            partition=getattr(record, "partition", None),
            offset=getattr(record, "offset", None),
            key=key.decode(errors="replace") if isinstance(key, bytes) else key,
            consumer_group=self._consumer_group(),
            service=self._factory.service,
            reason=reason[:4000],
            error_class=error_class,
            payload_b64=base64.b64encode(value).decode(),
            dead_lettered_at=datetime.now(UTC),
        )
        await broker.publish(dead, DELIVERIES_DEAD, key=key, headers={DEAD_LETTER_REASON_HEADER: reason[:256]})


def _security(settings: KafkaSettings) -> SASLPlaintext | None:
    if settings.sasl_username and settings.sasl_password:
        return SASLPlaintext(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            use_ssl=settings.security_protocol.upper().endswith("SSL"),
        )
    return None


def producer_options(settings: KafkaSettings, *, service: str) -> dict[str, Any]:
    """``AIOKafkaProducer`` options equivalent to ``make_broker``'s producer, for hot paths that publish many
    records per request and cannot afford FastStream's per-message middleware chain."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"relay-{service}",
        "acks": "all",
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_username and settings.sasl_password:
        options |= {
            "sasl_mechanism": settings.sasl_mechanism or "PLAIN",
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def make_broker(settings: KafkaSettings, *, service: str, tracer_provider: TracerProvider | None) -> KafkaBroker:
    """A ``KafkaBroker`` for ``service`` with tracing (``traceparent`` in headers) and the error middleware.

    Producers wait for all in-sync replicas (``acks=all``) so "published" means durable.
    """
    errors = ErrorMiddlewareFactory(service, settings.transient_backoff_s)
    broker = KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"relay-{service}",
        acks="all",
        request_timeout_ms=settings.request_timeout_ms,
        security=_security(settings),
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider), errors],
        graceful_timeout=30.0,
        description=f"Recipe Relay {service}",
        # Through our handlers (JSON with trace IDs), not FastStream's own coloured stdout handler; one line per
        # message only at DEBUG, so a busy consumer does not flood the logs (errors still log at ERROR).
        logger=logging.getLogger(f"relay.kafka.{service}"),
        log_level=logging.DEBUG,
    )
    errors.broker = broker
    return broker


async def ensure_topics(
    bootstrap_servers: str, topics: tuple[str, ...] = ALL_TOPICS, *, partitions: int = 3, replication: int = 1
) -> None:
    """Create any missing topics (idempotent); consumers joining before their topic exists wait needlessly."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, replication) for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, message in getattr(response, "topic_errors", []):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise TransientError(f"cannot create topic {topic}: {code} {message}")
    finally:
        await admin.close()
