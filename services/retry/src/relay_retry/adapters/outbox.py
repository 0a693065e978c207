"""The broker side of the retry service: final outcomes, dead letters and re-requests, each awaited (acks=all).

The only file that knows aiokafka's errors: each is translated into "refused for good" or "try again later".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from relay_contracts.messages import IntegrationStateChanged, delivery_key
from relay_contracts.topics import DELIVERIES_DEAD, DELIVERIES_OUTCOMES, INTEGRATIONS_CONTROL
from relay_platform.broker import DEAD_LETTER_REASON_HEADER, PERMANENT_KAFKA_ERRORS
from relay_platform.errors import TransientError
from relay_platform.telemetry import continuing_trace
from relay_retry.domain import GiveUp, ScheduledRetry
from relay_retry.ports import PublishFailure

logger = logging.getLogger("relay.retry.outbox")


def publish_failure(error: KafkaError) -> PublishFailure:
    """How a failed publish is classified: refused for good (too large, invalid topic, not authorised: the record
    must not keep its delivery `retrying` until an operator notices, it ends with a notice instead) or not."""
    return PublishFailure(
        error_class=type(error).__name__,
        detail=str(error)[:500],
        permanent=isinstance(error, PERMANENT_KAFKA_ERRORS),
    )


class KafkaOutbox:
    """``ports.Outbox`` on the app's ``KafkaBroker``."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        """Outcomes keyed by delivery ID like every outcome; dead letters by their original key.

        The outcome is what ends the delivery: if it is not confirmed, ``TransientError`` (everything is sent
        again later; duplicates are harmless). A dead letter is an extra copy: one the broker refuses for good is
        logged and skipped rather than holding the outcome back forever.
        """
        outcomes = [
            _in_trace(
                give_up.trace_parent,
                partial(
                    self._broker.publish,
                    give_up.outcome,
                    DELIVERIES_OUTCOMES,
                    key=delivery_key(give_up.outcome.delivery_id),
                ),
            )
            for give_up in give_ups
        ]
        deads = [
            _in_trace(
                give_up.trace_parent,
                partial(
                    self._broker.publish,
                    give_up.dead_letter,
                    DELIVERIES_DEAD,
                    key=(give_up.dead_letter.key or "").encode() or None,
                    headers={DEAD_LETTER_REASON_HEADER: give_up.dead_letter.reason[:256]},
                ),
            )
            for give_up in give_ups
            if give_up.dead_letter is not None
        ]
        results = await _settle([*outcomes, *deads])
        outcome_failures = [failure for failure in results[: len(outcomes)] if failure is not None]
        if outcome_failures:
            first = outcome_failures[0]
            raise TransientError(
                f"cannot publish {len(outcome_failures)} final outcomes: {first.error_class}: {first.detail}"
            )
        for failure in results[len(outcomes) :]:
            if failure is None:
                continue
            if not failure.permanent:
                raise TransientError(f"cannot publish dead letter: {failure.error_class}: {failure.detail}")
            logger.error("dead letter refused by the broker (%s); the final outcome went out", failure.error_class)

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        """Each due request on its deliverer's topic, all in flight together, each in its own trace; one result
        per retry."""
        return await _settle(
            [
                _in_trace(
                    retry.trace_parent,
                    partial(self._broker.publish, retry.request, retry.topic, key=retry.key),
                )
                for retry in due
            ]
        )

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        """Each change on the control topic, keyed by its integration (so one integration's changes stay in order
        and compaction keeps the newest); ``TransientError`` unless every one is confirmed."""
        results = await _settle(
            [self._broker.publish(change, INTEGRATIONS_CONTROL, key=change.kafka_key) for change in changes]
        )
        failures = [failure for failure in results if failure is not None]
        if failures:
            raise TransientError(
                f"cannot publish {len(failures)} integration state changes: "
                f"{failures[0].error_class}: {failures[0].detail}"
            )


async def _in_trace(trace_parent: str | None, publish: Callable[[], Awaitable[Any]]) -> Any:
    """``publish()`` started inside the trace ``trace_parent`` names (the producer span FastStream makes becomes
    its child). The publish is created here, not by the caller: each one runs as its own task under ``gather``, so
    each gets its own context, and none sees another's trace."""
    with continuing_trace(trace_parent):
        return await publish()


async def _settle(publishes: Sequence[Awaitable[Any]]) -> list[PublishFailure | None]:
    """Await every publish; per publish ``None`` once confirmed, or its classified Kafka error."""
    results = await asyncio.gather(*publishes, return_exceptions=True)
    settled: list[PublishFailure | None] = []
    for result in results:
        if isinstance(result, KafkaError):
            settled.append(publish_failure(result))
        elif isinstance(result, BaseException):
            raise result  # not a broker answer: a bug, or cancellation; the error middleware or task sees it
        else:
            settled.append(None)
    return settled
