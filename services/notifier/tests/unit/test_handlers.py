"""The notifier's routing table on FastStream's in-memory broker: exactly one notice per final outcome or
unhealthy/recovered change, to the right list, however often it is read; a malformed outcome or change is
dead-lettered and the next one handled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from faststream.kafka import KafkaBroker, TestKafkaBroker

from relay_contracts.messages import (
    DeliveryAttempted,
    DeliveryStatus,
    IntegrationStateChanged,
    MessageDeadLettered,
    OrderLine,
    StateChangeCause,
)
from relay_contracts.topics import DELIVERIES_DEAD, DELIVERIES_OUTCOMES, INTEGRATIONS_CONTROL, IntegrationType
from relay_notifier import handlers
from relay_notifier.adapters.sent import SqlSentNotices
from relay_notifier.ports import NotifierPorts
from relay_notifier.settings import Settings
from relay_platform.broker import make_broker
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import load_tenants

TENANTS_FILE = Path(__file__).parent.parent / "tenants.yaml"


def outcome(
    integration_id: str = "ops-hook",
    *,
    integration_type: IntegrationType = "zapier",
    status: DeliveryStatus = "failed",
    final: bool = True,
) -> DeliveryAttempted:
    delivery_id = uuid.uuid4().hex
    return DeliveryAttempted(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant="nt",
        integration_id=integration_id,
        integration_type=integration_type,
        recipe_id="999-63CHGJokGoxPfSba",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id="6182665224482", order_number="1022"),
        attempt=3,
        status=status,
        final=final,
        error_class="PermanentError" if status == "failed" else None,
        error_message="bucket does not exist" if status == "failed" else None,
        occurred_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
    )


def state_change(cause: StateChangeCause, *, tenant: str = "nt") -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex,
        tenant=tenant,
        integration_id="ops-hook",
        state="active" if cause == "recovered" else "paused",
        reason="5 consecutive failed attempts; last: TransientError: connection refused",
        changed_by="destination-health",
        changed_at=datetime.now(UTC),
        cause=cause,
    )


class Mailbox:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)

    def about(self, message: DeliveryAttempted) -> list[EmailMessage]:
        return [mail for mail in self.sent if message.delivery_id in mail.get_content()]

    def subjects(self) -> list[str]:
        return [str(mail["Subject"]) for mail in self.sent]


@asynccontextmanager
async def notifier(tmp_path: Path) -> AsyncIterator[tuple[KafkaBroker, Mailbox, list[MessageDeadLettered]]]:
    settings = Settings(
        kafka=KafkaSettings(transient_backoff_s=0),
        tenants_file=TENANTS_FILE,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}",
    )
    broker = make_broker(settings.kafka, service="notifier", tracer_provider=None)
    broker.include_router(handlers.build_router(settings))
    dead: list[MessageDeadLettered] = []

    @broker.subscriber(DELIVERIES_DEAD)
    async def on_dead(letter: MessageDeadLettered) -> None:
        dead.append(letter)

    mailbox = Mailbox()
    async with SqlSentNotices.open(settings.database_url) as sent, TestKafkaBroker(broker) as test_broker:
        test_broker.context.set_global(
            "ports",
            NotifierPorts(
                tenants=load_tenants(TENANTS_FILE), mailer=mailbox, sent=sent, from_address="relay@relay.example"
            ),
        )
        yield test_broker, mailbox, dead


async def test_a_final_failure_is_mailed_once_to_the_failure_list_however_often_it_is_read(tmp_path: Path) -> None:
    failed = outcome()

    async with notifier(tmp_path) as (broker, mailbox, _):
        for _ in range(3):
            await broker.publish(failed, DELIVERIES_OUTCOMES, key=failed.delivery_id.encode())

    [mail] = mailbox.about(failed)
    assert mail["To"] == "ops@example.com, oncall@example.com"
    assert mail["Subject"] == "[Recipe Relay] Delivery failed: Factory Zapier hook — order 1022"


async def test_a_final_success_is_mailed_to_the_success_list_and_unfinished_outcomes_to_no_one(tmp_path: Path) -> None:
    succeeded = outcome(status="succeeded")
    retrying = outcome(status="retrying", final=False)
    email_success = outcome("factory-mail", integration_type="email", status="succeeded")

    async with notifier(tmp_path) as (broker, mailbox, _):
        for message in (succeeded, retrying, email_success):
            await broker.publish(message, DELIVERIES_OUTCOMES, key=message.delivery_id.encode())

    [mail] = mailbox.about(succeeded)
    assert mail["To"] == "team@example.com"
    assert mailbox.about(retrying) == []
    assert mailbox.about(email_success) == []


async def test_a_malformed_outcome_is_dead_lettered_and_the_next_one_is_handled(tmp_path: Path) -> None:
    failed = outcome()

    async with notifier(tmp_path) as (broker, mailbox, dead):
        await broker.publish({"deliveryId": failed.delivery_id, "status": "exploded"}, DELIVERIES_OUTCOMES)
        await broker.publish(failed, DELIVERIES_OUTCOMES, key=failed.delivery_id.encode())

    [letter] = dead
    assert letter.source_topic == DELIVERIES_OUTCOMES
    assert letter.reason.startswith("invalid message")
    assert len(mailbox.about(failed)) == 1


async def test_an_unhealthy_pause_and_its_recovery_are_each_mailed_once_and_an_operator_change_not_at_all(
    tmp_path: Path,
) -> None:
    paused, resumed, operator = state_change("unhealthy"), state_change("recovered"), state_change("operator")

    async with notifier(tmp_path) as (broker, mailbox, dead):
        for message in (paused, paused, operator, resumed, resumed):
            await broker.publish(message, INTEGRATIONS_CONTROL, key=message.kafka_key)

    assert dead == []
    assert mailbox.subjects() == [
        "[Recipe Relay] Integration paused: Factory Zapier hook — destination unhealthy",
        "[Recipe Relay] Integration resumed: Factory Zapier hook — destination answering again",
    ]
    assert {mail["To"] for mail in mailbox.sent} == {"ops@example.com, oncall@example.com"}


async def test_a_malformed_state_change_is_dead_lettered_and_the_next_one_is_handled(tmp_path: Path) -> None:
    paused = state_change("unhealthy")

    async with notifier(tmp_path) as (broker, mailbox, dead):
        await broker.publish({"eventId": "e-1", "tenant": "nt", "cause": "bored"}, INTEGRATIONS_CONTROL)
        await broker.publish(paused, INTEGRATIONS_CONTROL, key=paused.kafka_key)

    [letter] = dead
    assert letter.source_topic == INTEGRATIONS_CONTROL
    assert letter.reason.startswith("invalid message")
    assert len(mailbox.sent) == 1
