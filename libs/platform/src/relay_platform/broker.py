"""The Kafka broker factory: tracing, the error middleware and safe producer defaults in one place."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypedDict

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    GroupAuthorizationFailedError,
    InvalidRequiredAcksError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedForMessageFormatError,
    UnsupportedVersionError,
)
from faststream import ContextRepo
from faststream._internal.types import CustomCallable
from faststream.exceptions import IgnoredException
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.middlewares import AckPolicy, BaseMiddleware
from faststream.security import SASLPlaintext
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from relay_contracts.messages import MESSAGE_BY_TOPIC, Message, MessageDeadLettered, known_fields_only
from relay_contracts.topics import ALL_TOPICS, DELIVERIES_DEAD, TOPIC_CONFIGS
from relay_platform.commits import partition_commit_parser
from relay_platform.errors import PermanentError, TransientError, error_class_name
from relay_platform.metrics import MESSAGES_CONSUMED, MESSAGES_DEAD_LETTERED, MESSAGES_FAILED
from relay_platform.redact import redact_secrets
from relay_platform.settings import KafkaSettings

logger = logging.getLogger("relay.broker")

DEAD_LETTER_REASON_HEADER = "x-relay-dead-letter-reason"


@dataclass(frozen=True, slots=True)
class MessageRead:
    """Which read of the current message this is: ``final`` means a transient failure now gives it up."""

    number: int
    final: bool


_FIRST_READ = MessageRead(1, final=False)
_CURRENT_READ: ContextVar[MessageRead | None] = ContextVar("relay_current_read", default=None)


def current_read() -> MessageRead:
    """The read of the message being handled (set by the error middleware around every handler).

    A handler whose unit of work has an outcome to report (the bundle-builder's failed deliveries) reports it
    on the final read instead of raising a ``TransientError`` that would only dead-letter the message.
    """
    return _CURRENT_READ.get() or _FIRST_READ


# Kafka errors that the same request meets again however often it is retried.
PERMANENT_KAFKA_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedVersionError,
    UnsupportedForMessageFormatError,
    InvalidRequiredAcksError,
    CorruptRecordException,
    PolicyViolationError,
)


def kafka_error(error: KafkaError, action: str) -> TransientError | PermanentError:
    """The taxonomy's reading of a Kafka client error met while ``action`` (say, "publishing outcomes")."""
    text = f"{action} failed: {type(error).__name__}"
    classified = PermanentError(text) if isinstance(error, PERMANENT_KAFKA_ERRORS) else TransientError(text)
    classified.__cause__ = error
    return classified


def _permanent_kafka_cause(error: BaseException) -> KafkaError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, PERMANENT_KAFKA_ERRORS):
            return seen
        seen = seen.__cause__
    return None


_RecordId = tuple[str, int, int]


class ErrorMiddlewareFactory:
    """Builds the per-message middleware that applies the error taxonomy to every subscriber.

    Every message ends in exactly one of:
    - handled: the handler returned (it published its outcomes first), the offset is committed;
    - ``TransientError`` (or a retriable Kafka error, or the handler running past ``handler_timeout_s``):
      re-read after a pause that doubles up to ``transient_backoff_max_s``, at most ``transient_max_reads``
      times; then given up on like a permanent error. Handlers see ``current_read().final`` on the last read;
    - ``PermanentError``, a non-retriable Kafka error, an undecodable or invalid message, anything unclassified:
      a bounded, PII-free copy goes to ``deliveries.dead.v1`` with its reason and the offset is committed.
    """

    def __init__(
        self, service: str, settings: KafkaSettings, topic_models: Mapping[str, type[Message]] | None = None
    ) -> None:
        self.service = service
        self.settings = settings
        self.topic_models: Mapping[str, type[Message]] = {**MESSAGE_BY_TOPIC, **(topic_models or {})}
        self.broker: KafkaBroker | None = None
        # Reads so far of messages that failed transiently, by record; bounded so a long run cannot grow it.
        self._reads: OrderedDict[_RecordId, int] = OrderedDict()

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware[Any, Any]:
        return _ErrorMiddleware(msg, context=context, factory=self)

    def reads_before(self, record: _RecordId) -> int:
        return self._reads.get(record, 0)

    def count_read(self, record: _RecordId, reads: int) -> None:
        self._reads[record] = reads
        self._reads.move_to_end(record)
        while len(self._reads) > _MAX_TRACKED_RECORDS:
            self._reads.popitem(last=False)

    def forget(self, record: _RecordId) -> None:
        self._reads.pop(record, None)

    def backoff_s(self, reads: int, retry_after_s: float | None) -> float:
        doubled = self.settings.transient_backoff_s * 2.0 ** max(reads - 1, 0)
        wait = max(doubled, retry_after_s or 0.0)
        return float(min(wait, self.settings.transient_backoff_max_s))


_MAX_TRACKED_RECORDS = 10_000


class _ErrorMiddleware(BaseMiddleware[Any, Any]):
    def __init__(self, msg: Any, /, *, context: ContextRepo, factory: ErrorMiddlewareFactory) -> None:
        super().__init__(msg, context=context)
        self._factory = factory
        record = self.msg
        self._record: _RecordId = (
            str(getattr(record, "topic", "")),
            int(getattr(record, "partition", -1) or 0),
            int(getattr(record, "offset", -1) or 0),
        )
        self._reads = factory.reads_before(self._record) + 1
        self._final = self._reads >= factory.settings.transient_max_reads
        self._read_token: Token[MessageRead | None] | None = None

    async def on_receive(self) -> None:
        self._read_token = _CURRENT_READ.set(MessageRead(self._reads, final=self._final))
        MESSAGES_CONSUMED.labels(self._factory.service, self._record[0]).inc()

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        budget = self._factory.settings.handler_timeout_s
        try:
            async with asyncio.timeout(budget):
                return await call_next(msg)
        except TimeoutError as error:
            raise TransientError(f"handler ran past its {budget:g} s budget") from error

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,  # noqa: ARG002 - FastStream's hook signature
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,  # noqa: ARG002
    ) -> bool | None:
        if self._read_token is not None:
            _CURRENT_READ.reset(self._read_token)
        if exc_val is None or not isinstance(exc_val, Exception) or isinstance(exc_val, IgnoredException):
            self._factory.forget(self._record)
            return False
        where = "{}[{}]@{}".format(*self._record)
        if isinstance(exc_val, KafkaError):
            exc_val = kafka_error(exc_val, "the handler's Kafka call")
        permanent_cause = _permanent_kafka_cause(exc_val)
        transient = isinstance(exc_val, TransientError) and permanent_cause is None
        MESSAGES_FAILED.labels(self._factory.service, self._record[0], "transient" if transient else "permanent").inc()
        if isinstance(exc_val, TransientError) and permanent_cause is None:
            if not self._final:
                wait = self._factory.backoff_s(self._reads, exc_val.retry_after_s)
                self._factory.count_read(self._record, self._reads)
                logger.warning(
                    "transient failure on %s (read %d of %d), re-reading in %.1f s: %s: %s",
                    where,
                    self._reads,
                    self._factory.settings.transient_max_reads,
                    wait,
                    error_class_name(exc_val),
                    exc_val,
                )
                await asyncio.sleep(wait)
                return False
            reason = f"gave up after {self._reads} reads; last transient failure: {exc_val}"
        elif permanent_cause is not None:
            reason = f"{exc_val} ({type(permanent_cause).__name__} is not retriable)"
        elif isinstance(exc_val, PermanentError):
            reason = str(exc_val)
        elif isinstance(exc_val, ValidationError):
            reason = "invalid message: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc_val.errors(include_url=False)
            )
        else:
            logger.error("unclassified error on %s; dead-lettering", where, exc_info=exc_val)
            reason = f"unexpected {error_class_name(exc_val)} while processing"
        self._factory.forget(self._record)
        await self._dead_letter_or_log(where, reason, error_class_name(exc_val))
        return True

    def _consumer_group(self) -> str | None:
        # The raw record does not name its group; the decoded message holds the consumer that read it.
        message = self.context.get_local("message")
        group = getattr(getattr(message, "consumer", None), "_group_id", None)
        return group if isinstance(group, str) else None

    async def _dead_letter_or_log(self, where: str, reason: str, error_class: str) -> None:
        """Publish the dead letter; when even a payload-less letter cannot be published, log it and go on.

        The dead letter is an extra copy for operators: whoever has an outcome to report has reported it, so a
        letter that cannot be parked must not hold the partition.
        """
        broker = self._factory.broker
        if broker is None:
            msg = "error middleware used before bind_broker()"
            raise RuntimeError(msg)
        dead = dead_letter_for(
            self.msg,
            reason=reason,
            error_class=error_class,
            service=self._factory.service,
            consumer_group=self._consumer_group(),
            max_payload_bytes=self._factory.settings.dead_letter_max_payload_bytes,
            topic_models=self._factory.topic_models,
        )
        key = getattr(self.msg, "key", None)
        headers = {DEAD_LETTER_REASON_HEADER: reason[:256]}
        for attempt in range(1, self._factory.settings.transient_max_reads + 1):
            try:
                await broker.publish(dead, DELIVERIES_DEAD, key=key, headers=headers)
            except KafkaError as error:
                logger.warning("dead-letter publish for %s failed: %s", where, type(error).__name__)
                if isinstance(error, PERMANENT_KAFKA_ERRORS) and dead.payload_complete:
                    dead = dead.model_copy(update={"payload_b64": "", "payload_complete": False})
                    continue
                if isinstance(error, PERMANENT_KAFKA_ERRORS):
                    break
                await asyncio.sleep(self._factory.backoff_s(attempt, None))
            else:
                MESSAGES_DEAD_LETTERED.labels(self._factory.service, self._record[0]).inc()
                logger.warning("dead-lettered %s: %s", where, reason)
                return
        logger.error("could not dead-letter %s; going on without a copy. Reason it was given up: %s", where, reason)


def dead_letter_for(
    record: Any,
    *,
    reason: str,
    error_class: str,
    service: str,
    consumer_group: str | None,
    max_payload_bytes: int,
    topic_models: Mapping[str, type[Message]] = MESSAGE_BY_TOPIC,
) -> MessageDeadLettered:
    """The dead letter of a consumed record: its value kept only as far as it is safe and small enough.

    A JSON object keeps the fields its topic's message defines (nothing personal a publisher added); anything
    that is not JSON, or is larger than ``max_payload_bytes``, keeps only its size and SHA-256.
    """
    value = getattr(record, "value", b"") or b""
    if isinstance(value, str):
        value = value.encode()
    topic = str(getattr(record, "topic", ""))
    payload = _scrubbed_payload(topic_models.get(topic), value)
    complete = payload is not None and len(payload) <= max_payload_bytes
    key = getattr(record, "key", None)
    return MessageDeadLettered(
        source_topic=topic,
        partition=getattr(record, "partition", None),
        offset=getattr(record, "offset", None),
        key=_bounded_key(key),
        consumer_group=consumer_group,
        service=service,
        reason=redact_secrets(reason)[:4000],
        error_class=error_class[:200],
        payload_b64=base64.b64encode(payload).decode() if complete and payload is not None else "",
        payload_complete=complete,
        payload_size=len(value),
        payload_sha256=hashlib.sha256(value).hexdigest(),
        dead_lettered_at=datetime.now(UTC),
    )


def _bounded_key(key: object) -> str | None:
    if isinstance(key, bytes):
        key = key.decode(errors="replace")
    if not isinstance(key, str):
        return None
    return key[:1024]


def _scrubbed_payload(model: type[Message] | None, value: bytes) -> bytes | None:
    """``value`` as it may be kept, or ``None`` when nothing of it may be (not a JSON object)."""
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    kept = known_fields_only(model, document) if model is not None else document
    if kept == document:
        return value  # byte for byte, so a replay is the very message that failed
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode()


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
        "max_batch_size": settings.producer_max_batch_bytes,
    }
    if settings.sasl_username and settings.sasl_password:
        options |= {
            "sasl_mechanism": settings.sasl_mechanism or "PLAIN",
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


class ConsumerOptions(TypedDict):
    group_id: str
    ack_policy: AckPolicy
    auto_offset_reset: Literal["earliest"]
    max_poll_interval_ms: int
    fetch_max_wait_ms: int
    # FastStream's own type for the parameter: a narrower one makes mypy lose the subscriber's return type.
    parser: CustomCallable


def consumer_options(settings: KafkaSettings, group_id: str) -> ConsumerOptions:
    """The subscriber settings every consumer states: its group, commit-after-handling, where a new group starts,
    the poll interval its handlers' time budget is checked against, and how long an empty fetch may wait
    (``KafkaSettings``)."""
    return ConsumerOptions(
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_poll_interval_ms=settings.max_poll_interval_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        # Acknowledging commits the handled record's partition only (see relay_platform.commits).
        parser=partition_commit_parser,
    )


def make_broker(
    settings: KafkaSettings,
    *,
    service: str,
    tracer_provider: TracerProvider | None,
    topic_models: Mapping[str, type[Message]] | None = None,
) -> KafkaBroker:
    """A ``KafkaBroker`` for ``service`` with tracing (``traceparent`` in headers) and the error middleware.

    ``topic_models`` names the message of topics outside ``relay_contracts`` (a tenant's OMS topic), so their
    dead letters keep only that message's fields too.

    Producers wait for all in-sync replicas (``acks=all``) so "published" means durable.
    """
    errors = ErrorMiddlewareFactory(service, settings, topic_models)
    broker = KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"relay-{service}",
        acks="all",
        request_timeout_ms=settings.request_timeout_ms,
        max_batch_size=settings.producer_max_batch_bytes,
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
    """Create any missing topics (idempotent; with their ``TOPIC_CONFIGS``, e.g. the control topic compacted);
    consumers joining before their topic exists wait needlessly."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, partitions, replication, topic_configs=TOPIC_CONFIGS.get(t, {}))
            for t in topics
            if t not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, message in getattr(response, "topic_errors", []):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise TransientError(f"cannot create topic {topic}: {code} {message}")
    finally:
        await admin.close()
