"""The deliverers' use case, broker-free: one delivery attempt finds the integration, fetches the files, calls the
destination and classifies what happened into the outcome (and retry command) to publish."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from relay_contracts.messages import (
    BundleFile,
    DeliverBundle,
    DeliveryAttempted,
    DeliveryStatus,
    RetryDelivery,
    delivery_key,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, DELIVERIES_RETRY, IntegrationType
from relay_delivery.ports import Destination, FetchedFile
from relay_delivery.scrub import Scrubber, integration_secrets
from relay_delivery.states import IntegrationStates
from relay_platform.errors import PermanentError, RelayError, TransientError, error_class_name
from relay_platform.metrics import DELIVERIES_HELD, DELIVERY_ATTEMPTS, DELIVERY_DURATION, ORDER_TO_DELIVERED
from relay_platform.objectstore import ObjectStore
from relay_platform.outgoing import Outgoing
from relay_platform.tenants import IntegrationBase, TenantsConfig

logger = logging.getLogger("relay.delivery")
# The process's provider (``relay_platform.telemetry``) once installed; a no-op before that (unit tests).
tracer = trace.get_tracer("relay.delivery")

IntegrationT = TypeVar("IntegrationT", bound=IntegrationBase)

_MAX_ERROR_TEXT = 2000
INTEGRATION_PAUSED = "IntegrationPaused"


class IntegrationUnavailableError(PermanentError):
    """The request names a tenant/integration that is unknown, disabled or of another type."""


class ArtifactCorruptError(PermanentError):
    """A bundle file in the artifact store does not match the size/SHA-256 in the request."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt produced: always one outcome; a retry command when the failure was transient."""

    outcome: DeliveryAttempted
    retry: RetryDelivery | None = None

    def messages(self) -> list[Outgoing]:
        """What to publish: the outcome, and the retry command of a transient failure, both keyed by delivery ID
        so every attempt of one delivery stays in order."""
        key = delivery_key(self.outcome.delivery_id)
        messages = [Outgoing(DELIVERIES_OUTCOMES, self.outcome, key)]
        if self.retry is not None:
            messages.append(Outgoing(DELIVERIES_RETRY, self.retry, key))
        return messages


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request not attempted because its integration is paused: no outcome, only the hold command (the same
    attempt number: it was not made) for the retry service to keep until the integration is resumed."""

    hold: RetryDelivery

    def messages(self) -> list[Outgoing]:
        return [Outgoing(DELIVERIES_RETRY, self.hold, delivery_key(self.hold.request.delivery_id))]


async def fetch_files(store: ObjectStore, files: Sequence[BundleFile]) -> list[FetchedFile]:
    """Read every bundle file (claim check) and verify its size and SHA-256.

    Raises ``ArtifactCorruptError`` on a mismatch, ``ObjectNotFoundError`` (permanent) for a missing object,
    ``TransientError`` when the store is unreachable.
    """
    fetched = await asyncio.gather(*(store.get(file.key) for file in files))
    result: list[FetchedFile] = []
    for file, data in zip(files, fetched, strict=True):
        if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
            raise ArtifactCorruptError(f"artifact for {file.name!r} does not match its size/sha256")
        result.append(FetchedFile(meta=file, data=data))
    return result


class Deliverer(Generic[IntegrationT]):
    """Runs attempts for one integration type; safe to call concurrently.

    ``attempt`` never raises for a delivery problem: it returns the outcome to publish (and the
    ``RetryDelivery`` for a transient failure). Whether a transient failure gets another attempt is the
    retry service's decision (it owns the back-off schedule and the attempt limit), so the outcome here is
    ``retrying``/``final=False``; permanent failures are ``failed``/``final=True`` at once.
    """

    def __init__(
        self,
        *,
        integration_type: IntegrationType,
        integration_class: type[IntegrationT],
        tenants: TenantsConfig,
        store: ObjectStore,
        destination: Destination[IntegrationT],
        attempt_timeout_s: float = 180.0,
        scrubber: Scrubber | None = None,
        states: IntegrationStates | None = None,
        control_catch_up_s: float = 30.0,
    ) -> None:
        self.integration_type = integration_type
        self.integration_class = integration_class
        self.tenants = tenants
        self.store = store
        self.destination = destination
        self.attempt_timeout_s = attempt_timeout_s
        self.scrubber = scrubber or Scrubber()
        # None: nothing is ever held (a deliverer built without the control topic, as in the older unit tests).
        self.states = states
        self.control_catch_up_s = control_catch_up_s

    def integration_for(self, request: DeliverBundle) -> IntegrationT:
        """The enabled integration of this type that ``request`` names, or ``IntegrationUnavailableError``."""
        if self.tenants.tenant(request.tenant) is None:
            raise IntegrationUnavailableError(f"tenant {request.tenant!r} is not configured")
        integration = self.tenants.integration(request.tenant, request.integration_id)
        if integration is None:
            raise IntegrationUnavailableError(
                f"integration {request.integration_id!r} is not configured for tenant {request.tenant!r}"
            )
        if not isinstance(integration, self.integration_class):
            raise IntegrationUnavailableError(
                f"integration {request.integration_id!r} is not of type {self.integration_type!r}"
            )
        if not integration.enabled:
            raise IntegrationUnavailableError(f"integration {request.integration_id!r} is disabled")
        return integration

    async def handle(self, request: DeliverBundle) -> AttemptResult | HeldRequest:
        """Hold ``request`` if its integration is paused, else attempt it (``attempt``). A probe (``request.probe``,
        sent by the retry service's health rules) is attempted although its integration is paused.

        Waits first (bounded) until the control topic has been read up to where it stood at start: a restarted
        deliverer must not attempt a request of an integration paused before it started.
        """
        if self.states is not None:
            await self.states.wait_caught_up(self.control_catch_up_s)
        if request.probe:
            # Whatever this replica's view of the control topic: the retry service keeps the request's held row,
            # so a probe retried the ordinary way would make a second line of attempts of one delivery.
            return self.held_again_unless_done(request, await self.attempt(request))
        if self.states is not None and self.states.paused(request.tenant, request.integration_id):
            return self.hold(request)
        return await self.attempt(request)

    def held_again_unless_done(self, probe: DeliverBundle, result: AttemptResult) -> AttemptResult:
        """A probe of an unhealthy integration was attempted: its outcome goes out as it is (the retry
        service counts it, and resumes the integration on a success), but a transient failure is held again, the
        same attempt, rather than retried: a probe spends none of the delivery's attempts. The retry service still
        holds the request's row, so the hold adds nothing there and the request keeps its place in the line."""
        if result.retry is None:
            return result
        hold = result.retry.model_copy(update={"request": probe.model_copy(update={"probe": False}), "hold": "paused"})
        return replace(result, retry=hold)

    def hold(self, request: DeliverBundle) -> HeldRequest:
        """The hold command of a request of a paused integration: no attempt, no outcome."""
        with tracer.start_as_current_span(
            f"deliver {self.integration_type}",
            kind=SpanKind.CLIENT,
            attributes={
                "relay.integration.type": self.integration_type,
                "relay.integration.id": request.integration_id,
                "relay.delivery.id": request.delivery_id,
                "relay.delivery.attempt": request.attempt,
                "relay.delivery.outcome": "held",
            },
        ):
            DELIVERIES_HELD.labels(self.integration_type).inc()
            logger.info(
                "delivery %s attempt %d to %s/%s held: the integration is paused",
                request.delivery_id,
                request.attempt,
                request.tenant,
                request.integration_id,
            )
            return HeldRequest(
                RetryDelivery(
                    request=request,
                    error_class=INTEGRATION_PAUSED,
                    error_message=f"integration {request.integration_id} is paused; not attempted, held",
                    failed_at=datetime.now(UTC),
                    hold="paused",
                )
            )

    async def attempt(self, request: DeliverBundle) -> AttemptResult:
        """Deliver ``request`` once and describe what happened."""
        # One CLIENT span per attempt, a child of the request's consume span (so in the order's trace): IDs, type
        # and outcome only, never the integration's settings (hosts with credentials, addresses, keys).
        with tracer.start_as_current_span(
            f"deliver {self.integration_type}",
            kind=SpanKind.CLIENT,
            attributes={
                "relay.integration.type": self.integration_type,
                "relay.integration.id": request.integration_id,
                "relay.delivery.id": request.delivery_id,
                "relay.delivery.attempt": request.attempt,
            },
            # The outcome says what failed (class only); an exception's text may hold what the scrubber removes.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            result = await self._attempt(request)
            _trace_outcome(span, result.outcome)
        return result

    async def _attempt(self, request: DeliverBundle) -> AttemptResult:
        started = time.monotonic()
        scrub = self.scrubber
        error: RelayError | None = None
        try:
            integration = self.integration_for(request)
            scrub = scrub.with_secrets(integration_secrets(integration))
            files = await fetch_files(self.store, request.files)
            async with asyncio.timeout(self.attempt_timeout_s):
                await self.destination.deliver(integration, request, files)
        except RelayError as failure:
            error = failure
        except TimeoutError:
            error = TransientError(f"delivery attempt timed out after {self.attempt_timeout_s:g}s")
        except Exception as unexpected:  # noqa: BLE001 - an unforeseen SDK error must still yield an outcome
            # Transient: the retry service bounds the attempts and the failure list gets its notice, where a
            # dead-lettered message would leave the delivery silently open. No traceback: it may hold secrets.
            logger.error(  # noqa: TRY400
                "unexpected %s delivering %s: %s",
                error_class_name(unexpected),
                request.delivery_id,
                scrub(str(unexpected))[:_MAX_ERROR_TEXT],
            )
            error = TransientError(f"unexpected {error_class_name(unexpected)}: {unexpected}")
        elapsed_s = time.monotonic() - started
        result = self._result(request, error, int(elapsed_s * 1000), scrub)
        self._observe(request, result.outcome, elapsed_s)
        return result

    def _observe(self, request: DeliverBundle, outcome: DeliveryAttempted, elapsed_s: float) -> None:
        """The attempt's metrics: labelled by destination type and outcome only (no tenant, integration or order:
        unbounded, and the IDs are customer data)."""
        DELIVERY_ATTEMPTS.labels(self.integration_type, outcome.status).inc()
        DELIVERY_DURATION.labels(self.integration_type).observe(elapsed_s)
        if outcome.status == "succeeded" and request.feed == "order":
            # From when the suite accepted the order (accepted_at, kept by every retry); a request from a producer
            # that predates it falls back to requested_at (the bundle-builder's request), the earliest it has then.
            # Clamped: another host's clock may run ahead of ours.
            waited = (outcome.occurred_at - (request.accepted_at or request.requested_at)).total_seconds()
            ORDER_TO_DELIVERED.labels(self.integration_type).observe(max(waited, 0.0))

    def _result(
        self, request: DeliverBundle, error: RelayError | None, duration_ms: int, scrub: Scrubber
    ) -> AttemptResult:
        now = datetime.now(UTC)
        status: DeliveryStatus
        if error is None:
            status, final = "succeeded", True
        elif isinstance(error, TransientError):
            status, final = "retrying", False
        else:
            status, final = "failed", True
        error_class = error_class_name(error) if error is not None else None
        error_message = scrub(str(error))[:_MAX_ERROR_TEXT] if error is not None else None
        outcome = DeliveryAttempted.of(
            request,
            status=status,
            final=final,
            occurred_at=now,
            duration_ms=duration_ms,
            error_class=error_class,
            error_message=error_message,
        )
        log = logger.info if error is None else logger.warning
        log(
            "delivery %s attempt %d to %s/%s: %s in %d ms%s",
            request.delivery_id,
            request.attempt,
            request.tenant,
            request.integration_id,
            status,
            duration_ms,
            f" ({error_class}: {error_message})" if error is not None else "",
        )
        retry = None
        if isinstance(error, TransientError):
            retry = RetryDelivery(
                request=request,
                error_class=error_class or "TransientError",
                error_message=error_message or "",
                retry_after_s=error.retry_after_s,
                failed_at=now,
            )
        return AttemptResult(outcome=outcome, retry=retry)


def _trace_outcome(span: Span, outcome: DeliveryAttempted) -> None:
    span.set_attribute("relay.delivery.outcome", outcome.status)
    span.set_attribute("relay.delivery.final", outcome.final)
    if outcome.error_class is not None:
        span.set_attribute("error.type", outcome.error_class)
    if outcome.status != "succeeded":
        # The class only: the scrubbed message is in the outcome and the logs, not on every trace backend.
        span.set_status(Status(StatusCode.ERROR, outcome.error_class))
