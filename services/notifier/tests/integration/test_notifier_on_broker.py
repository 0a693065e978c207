"""The notifier on a real broker and a real SMTP server (aiosmtpd, with AUTH): one notice per finished delivery,
and one per integration paused as unhealthy (read from the real control topic)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from relay_contracts.messages import (
    DeliveryAttempted,
    DeliveryStatus,
    IntegrationStateChanged,
    OrderLine,
    StateChangeCause,
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, INTEGRATIONS_CONTROL, IntegrationType
from relay_devservers.smtp import CapturedMail, SmtpCapture
from relay_notifier.main import create_app
from relay_notifier.settings import NotifierSmtpSettings, Settings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import load_tenants

pytestmark = pytest.mark.integration

TENANTS_FILE = Path(__file__).parent.parent / "tenants.yaml"
SMTP_USER = "notifier"
SMTP_PASSWORD = "notifier-smtp-pw"


def outcome(
    integration_id: str = "ops-hook",
    *,
    integration_type: IntegrationType = "zapier",
    status: DeliveryStatus = "failed",
    final: bool = True,
    order_number: str | None = None,
    attempt: int = 3,
) -> DeliveryAttempted:
    delivery_id = uuid.uuid4().hex
    number = order_number or f"10{delivery_id[:6]}"
    failed = status != "succeeded"
    return DeliveryAttempted(
        delivery_id=delivery_id,
        trigger_id=f"t-{delivery_id}",
        tenant="nt",
        integration_id=integration_id,
        integration_type=integration_type,
        recipe_id=f"999-{delivery_id[:12]}",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id=f"61826{delivery_id[:8]}", order_number=number, item_id="li-1"),
        attempt=attempt,
        status=status,
        final=final,
        error_class="TransientError" if failed else None,
        error_message="hook answered 503 Service Unavailable" if failed else None,
        files=(f"{number}_ID_x_R_999-abc_Ticket.pdf",),
        occurred_at=datetime.now(UTC),
    )


def state_change(cause: StateChangeCause, *, tenant: str = "nt") -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex,
        tenant=tenant,
        integration_id="ops-hook",
        state="active" if cause == "recovered" else "paused",
        reason="5 consecutive failed attempts; last: TransientError: connection refused",
        changed_by="ops-key" if cause == "operator" else "destination-health",
        changed_at=datetime.now(UTC),
        cause=cause,
    )


@dataclass
class Outcomes:
    producer: AIOKafkaProducer
    smtp: SmtpCapture

    async def publish(self, message: DeliveryAttempted, *, key: str | None = None) -> None:
        key_bytes = (key or message.delivery_id).encode()
        await self.producer.send_and_wait(DELIVERIES_OUTCOMES, message.model_dump_json().encode(), key=key_bytes)

    async def settle(self, key: str) -> None:
        """Publish a noticed outcome on ``key``'s partition and wait for its e-mail: everything before it is done."""
        sentinel = outcome(status="succeeded", attempt=1)
        await self.publish(sentinel, key=key)
        await self.smtp.wait_for_async(lambda mail: about(mail, sentinel), deadline_s=30)

    def mails(self, message: DeliveryAttempted) -> list[CapturedMail]:
        return self.smtp.find(lambda mail: about(mail, message))

    async def publish_change(self, change: IntegrationStateChanged) -> None:
        await self.producer.send_and_wait(INTEGRATIONS_CONTROL, change.model_dump_json().encode(), key=change.kafka_key)

    async def settle_changes(self, tenant: str) -> None:
        """Publish a noticed change of ``tenant``'s ops-hook (its partition) and wait for its e-mail: every change
        of that integration before it is done."""
        sentinel = state_change("recovered", tenant=tenant)
        await self.publish_change(sentinel)
        await self.smtp.wait_for_async(lambda mail: telling(mail, sentinel), deadline_s=30)

    def change_mails(self, change: IntegrationStateChanged) -> list[CapturedMail]:
        return self.smtp.find(lambda mail: telling(mail, change))


def about(mail: CapturedMail, message: DeliveryAttempted) -> bool:
    return message.delivery_id in mail.data.decode(errors="replace")


def telling(mail: CapturedMail, change: IntegrationStateChanged) -> bool:
    # The body names the integration, not the change: its notice is known by the Message-ID derived from it.
    return stable_id(change.event_id, change.cause) in str(mail.message["Message-ID"])


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpCapture]:
    # Our own capture server (not the session one): one test stops and restarts it on the same port.
    server = SmtpCapture(tmp_path_factory.mktemp("smtp"), username=SMTP_USER, password=SMTP_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def outcomes(
    kafka_bootstrap: str, smtp: SmtpCapture, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outcomes]:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        database_url=f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('notifier') / 'notifier.db'}",
        tenants_file=TENANTS_FILE,
        smtp=NotifierSmtpSettings(
            host="127.0.0.1",
            port=smtp.port,
            username=SMTP_USER,
            password=SecretStr(SMTP_PASSWORD),
            send_attempts=2,
            retry_wait_s=0.01,
        ),
        from_address="Recipe Relay <relay@relay.example>",
    )
    app = create_app(settings, tenants=load_tenants(TENANTS_FILE))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    await app.start()
    try:
        yield Outcomes(producer, smtp)
    finally:
        await app.stop()
        await producer.stop()


async def test_final_failure_sends_one_notice_to_the_failure_list(outcomes: Outcomes) -> None:
    failed = outcome(order_number="1022")
    await outcomes.publish(failed)
    await outcomes.settle(failed.delivery_id)

    [mail] = outcomes.mails(failed)
    assert sorted(mail.rcpt_tos) == ["oncall@example.com", "ops@example.com"]
    message = mail.message
    assert message["Subject"] == "[Recipe Relay] Delivery failed: Factory Zapier hook — order 1022"
    assert message["Message-ID"].endswith("@relay.example>")
    body = message.get_content()
    assert failed.order is not None
    for fact in (
        "Factory Zapier hook",
        "ops-hook",
        "zapier",
        "nt",
        failed.recipe_id,
        "Order number: 1022",
        f"Order ID:     {failed.order.order_id}",
        "Attempts:     3",
        "TransientError: hook answered 503 Service Unavailable",
        'POST /api/v2/integrations/trigger   {"orderNumber": "1022"}',
        "relay trigger --order-number 1022",
    ):
        assert fact in body
    assert SMTP_PASSWORD not in mail.data.decode()


async def test_redelivered_outcome_sends_no_second_notice(outcomes: Outcomes) -> None:
    failed = outcome()
    await outcomes.publish(failed)
    await outcomes.publish(failed)
    await outcomes.settle(failed.delivery_id)
    first = outcomes.mails(failed)
    await outcomes.publish(failed)  # again, after it was recorded
    await outcomes.settle(failed.delivery_id)

    assert len(first) == 1
    assert len(outcomes.mails(failed)) == 1


async def test_final_success_sends_one_notice_to_the_success_list(outcomes: Outcomes) -> None:
    succeeded = outcome(status="succeeded", attempt=2)
    await outcomes.publish(succeeded)
    await outcomes.settle(succeeded.delivery_id)

    [mail] = outcomes.mails(succeeded)
    assert mail.rcpt_tos == ["team@example.com"]
    assert mail.message["Subject"].startswith("[Recipe Relay] Delivered: Factory Zapier hook — order ")
    assert succeeded.files[0] in mail.message.get_content()


async def test_success_of_an_email_integration_sends_no_duplicate(outcomes: Outcomes) -> None:
    succeeded = outcome("factory-mail", integration_type="email", status="succeeded", attempt=1)
    await outcomes.publish(succeeded)
    await outcomes.settle(succeeded.delivery_id)

    assert outcomes.mails(succeeded) == []


async def test_outcomes_that_are_not_final_or_have_no_list_send_nothing(outcomes: Outcomes) -> None:
    retrying = outcome(status="retrying", final=False, attempt=1)
    quiet = outcome("quiet-hook")
    await outcomes.publish(retrying)
    await outcomes.publish(quiet, key=retrying.delivery_id)
    await outcomes.settle(retrying.delivery_id)

    assert outcomes.mails(retrying) == []
    assert outcomes.mails(quiet) == []


async def test_unhealthy_pause_sends_one_notice_to_that_integrations_failure_list(outcomes: Outcomes) -> None:
    paused = state_change("unhealthy")
    # The same integration ID in another tenant, paused by an operator: nobody is told.
    operator = state_change("operator", tenant="nt2")
    await outcomes.publish_change(operator)
    await outcomes.publish_change(paused)
    await outcomes.publish_change(paused)  # a redelivery
    await outcomes.settle_changes("nt")
    await outcomes.settle_changes("nt2")

    [mail] = outcomes.change_mails(paused)
    assert sorted(mail.rcpt_tos) == ["oncall@example.com", "ops@example.com"]
    assert mail.message["Subject"] == "[Recipe Relay] Integration paused: Factory Zapier hook — destination unhealthy"
    body = mail.message.get_content()
    assert "5 consecutive failed attempts; last: TransientError: connection refused" in body
    assert "POST /api/v2/integrations/ops-hook/resume" in body
    assert outcomes.change_mails(operator) == []
    # nt2's list heard only its sentinel recovery, never the operator's pause.
    to_nt2 = outcomes.smtp.find(lambda mail: "ops@tenant2.example" in mail.rcpt_tos)
    assert [m.message["Subject"].split(":")[0] for m in to_nt2] == ["[Recipe Relay] Integration resumed"]


async def test_notice_is_sent_once_the_smtp_server_is_back(outcomes: Outcomes, smtp: SmtpCapture) -> None:
    smtp.stop()
    connections = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    refuser = await asyncio.start_server(hang_up, "127.0.0.1", smtp.port)
    try:
        failed = outcome()
        await outcomes.publish(failed)
        # Two in-process attempts per read: a third connection means the outcome was read again.
        async with asyncio.timeout(30):
            while connections < 3:
                await asyncio.sleep(0.02)
    finally:
        refuser.close()
        await refuser.wait_closed()
    assert outcomes.mails(failed) == []
    smtp.start()

    await outcomes.settle(failed.delivery_id)

    assert len(outcomes.mails(failed)) == 1
