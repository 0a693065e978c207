"""A paused integration's requests on FastStream's in-memory broker: held (one hold command, same attempt, no
attempt, no outcome) while another integration of the same type is delivered; attempted again once resumed. And the
state rules every deliverer keeps: newest ``changedAt`` wins, the catch-up wait is bounded."""

import asyncio
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from delivery_harness import running_email_deliverer

from relay_contracts.messages import DeliverBundle, IntegrationState, IntegrationStateChanged, delivery_key
from relay_delivery import FetchedFile
from relay_delivery.states import IntegrationStates
from relay_delivery.testing import InMemoryDeliverer, deliver_bundle
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import EmailIntegration, TenantsConfig

TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "acme": {
                "recipe-prefix": "999",
                "integrations": [
                    {"id": "mail", "type": "email", "to": "a@b.c"},
                    {"id": "other-mail", "type": "email", "to": "d@e.f"},
                ],
            }
        }
    }
)


class Destination:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        self.delivered.append(request.delivery_id)


def running(tmp_path: Path, destination: Destination) -> AbstractAsyncContextManager[InMemoryDeliverer]:
    return running_email_deliverer(tmp_path, destination, TENANTS)


def change(state: IntegrationState, at: datetime, integration_id: str = "mail") -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant="acme", integration_id=integration_id, state=state, changed_at=at
    )


async def test_a_paused_integrations_request_is_held_while_another_integration_is_delivered(tmp_path: Path) -> None:
    destination = Destination()
    held = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=(), attempt=2)
    other = deliver_bundle(tenant="acme", integration_id="other-mail", integration_type="email", files=())

    async with running(tmp_path, destination) as deliverer:
        deliverer.change(change("paused", datetime.now(UTC)))
        await deliverer.publish(held)
        await deliverer.publish(other)
        [hold] = await deliverer.wait_for_retries(1)
        [outcome] = await deliverer.wait_for_outcomes(1)

    assert (hold.request, hold.hold, hold.error_class) == (held, "paused", "IntegrationPaused")
    assert hold.request.attempt == 2  # not made, so not counted
    assert [key for _, key in deliverer.retries] == [delivery_key(held.delivery_id)]
    assert outcome.delivery_id == other.delivery_id
    assert [o.delivery_id for o, _ in deliverer.outcomes] == [other.delivery_id]
    assert destination.delivered == [other.delivery_id]


async def test_after_a_resume_the_request_is_attempted(tmp_path: Path) -> None:
    destination = Destination()
    first = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())
    again = first.model_copy()
    t0 = datetime.now(UTC)

    async with running(tmp_path, destination) as deliverer:
        deliverer.change(change("paused", t0))
        await deliverer.publish(first)
        await deliverer.wait_for_retries(1)
        deliverer.change(change("active", t0 + timedelta(seconds=1)))
        # What the retry service publishes once the resume releases the held request.
        await deliverer.publish(again)
        [outcome] = await deliverer.wait_for_outcomes(1)

    assert (outcome.delivery_id, outcome.status) == (first.delivery_id, "succeeded")
    assert destination.delivered == [first.delivery_id]
    assert len(deliverer.retries) == 1


def test_the_newest_change_wins_and_a_stale_one_is_ignored() -> None:
    states = IntegrationStates()
    t0 = datetime.now(UTC)

    assert states.apply(change("paused", t0))
    assert not states.apply(change("active", t0 - timedelta(seconds=1)))
    assert not states.apply(change("active", t0))  # not newer: a resend
    assert states.paused("acme", "mail")
    assert not states.paused("acme", "other-mail")
    assert states.apply(change("active", t0 + timedelta(seconds=1)))
    assert not states.paused("acme", "mail")


async def test_the_catch_up_wait_is_bounded_and_shared() -> None:
    states = IntegrationStates()

    # Never caught up (the reader cannot reach the topic): every waiter goes on at the one deadline.
    await asyncio.gather(*(states.wait_caught_up(0.05) for _ in range(3)))
    await states.wait_caught_up(3600)  # once passed, nobody waits again

    assert not states.caught_up


class FlakyDestination(Destination):
    """Fails each delivery with ``failure`` while it is set (a destination that is down, or refusing)."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        if self.failure is not None:
            raise self.failure
        await super().deliver(integration, request, files)


async def test_a_probe_is_attempted_while_paused_and_a_transient_failure_is_held_again_same_attempt(
    tmp_path: Path,
) -> None:
    destination = FlakyDestination()
    destination.failure = TransientError("connection refused")
    probe = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=(), attempt=2)
    probe = probe.model_copy(update={"probe": True})

    async with running(tmp_path, destination) as deliverer:
        deliverer.change(change("paused", datetime.now(UTC)))
        await deliverer.publish(probe)
        [outcome] = await deliverer.wait_for_outcomes(1)
        [hold] = await deliverer.wait_for_retries(1)

    # Attempted (the health rules count its outcome), not retried: held again, the same attempt, as a plain request.
    assert (outcome.status, outcome.final, outcome.attempt) == ("retrying", False, 2)
    assert (hold.hold, hold.request.attempt, hold.request.probe) == ("paused", 2, False)
    assert hold.request.delivery_id == probe.delivery_id
    assert destination.delivered == []


async def test_a_probe_that_succeeds_is_delivered_and_one_refused_for_good_fails_for_good(tmp_path: Path) -> None:
    destination = FlakyDestination()
    good = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())
    bad = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())

    async with running(tmp_path, destination) as deliverer:
        deliverer.change(change("paused", datetime.now(UTC)))
        await deliverer.publish(good.model_copy(update={"probe": True}))
        [delivered] = await deliverer.wait_for_outcomes(1)
        destination.failure = PermanentError("mailbox does not exist")
        await deliverer.publish(bad.model_copy(update={"probe": True}))
        outcomes = await deliverer.wait_for_outcomes(2)

    assert (delivered.delivery_id, delivered.status, delivered.final) == (good.delivery_id, "succeeded", True)
    assert (outcomes[1].delivery_id, outcomes[1].status, outcomes[1].final) == (bad.delivery_id, "failed", True)
    assert deliverer.retries == []  # neither is held again nor retried
    assert destination.delivered == [good.delivery_id]
