"""Which outcome gets which notice, what it says, and that a redelivery sends nothing twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from relay_contracts.messages import DeliveryAttempted, DeliveryStatus, OrderLine, stable_id
from relay_contracts.topics import IntegrationType
from relay_notifier.domain import Notice, build_email, notice_for
from relay_notifier.ports import NotifierPorts
from relay_notifier.service import notify_outcome
from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig, load_tenants

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")


def outcome(
    integration_id: str = "ops-hook",
    *,
    integration_type: IntegrationType = "zapier",
    status: DeliveryStatus = "failed",
    final: bool = True,
    order: bool = True,
    tenant: str = "nt",
) -> DeliveryAttempted:
    delivery_id = uuid.uuid4().hex
    return DeliveryAttempted(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant=tenant,
        integration_id=integration_id,
        integration_type=integration_type,
        recipe_id="999-63CHGJokGoxPfSba",
        feed="order" if order else "recipe",
        reason="order_created" if order else "recipe_saved",
        order=OrderLine(order_id="6182665224482", order_number="1022") if order else None,
        attempt=3,
        status=status,
        final=final,
        error_class="PermanentError" if status == "failed" else None,
        error_message="bucket does not exist" if status == "failed" else None,
        occurred_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
    )


def test_final_failure_goes_to_the_failure_list_with_everything_needed_to_act() -> None:
    failed = outcome()
    notice = notice_for(failed, TENANTS)
    assert notice is not None
    assert notice.kind == "failure"
    assert notice.recipients == ("ops@example.com", "oncall@example.com")
    assert notice.notice_id == stable_id(failed.delivery_id, "failed")
    assert notice.subject == "[Recipe Relay] Delivery failed: Factory Zapier hook — order 1022"
    for fact in (
        "Factory Zapier hook",
        "ops-hook",
        "zapier",
        "Tenant:       nt",
        "Recipe ID:    999-63CHGJokGoxPfSba",
        "Order number: 1022",
        "Order ID:     6182665224482",
        "Attempts:     3",
        "PermanentError: bucket does not exist",
        'POST /api/v2/integrations/trigger   {"orderNumber": "1022"}',
        "relay trigger --order-number 1022",
    ):
        assert fact in notice.body


def test_failure_of_a_recipe_delivery_is_retriggered_by_recipe_id() -> None:
    notice = notice_for(outcome(order=False), TENANTS)
    assert notice is not None
    assert notice.subject.endswith("— recipe 999-63CHGJokGoxPfSba")
    assert '{"recipeId": "999-63CHGJokGoxPfSba"}' in notice.body
    assert "relay trigger --recipe-id 999-63CHGJokGoxPfSba" in notice.body
    assert "Order number" not in notice.body


def test_final_success_goes_to_the_success_list() -> None:
    notice = notice_for(outcome(status="succeeded"), TENANTS)
    assert notice is not None
    assert (notice.kind, notice.recipients) == ("success", ("team@example.com",))
    assert notice.subject == "[Recipe Relay] Delivered: Factory Zapier hook — order 1022"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("email success", outcome("factory-mail", integration_type="email", status="succeeded")),
        ("retrying", outcome(status="retrying", final=False)),
        ("failed but not final", outcome(final=False)),
        ("no lists", outcome("quiet-hook")),
        ("unknown integration", outcome("gone")),
        ("unknown tenant", outcome(tenant="elsewhere")),
    ],
)
def test_no_notice(case: str, message: DeliveryAttempted) -> None:
    assert notice_for(message, TENANTS) is None, case


def test_email_integration_failure_is_still_noticed() -> None:
    notice = notice_for(outcome("factory-mail", integration_type="email"), TENANTS)
    assert notice is not None
    assert notice.recipients == ("ops@example.com",)


def test_email_has_a_deterministic_message_id_and_one_line_subject() -> None:
    notice = notice_for(outcome(), TENANTS)
    assert notice is not None
    first = build_email(notice, "Recipe Relay <relay@relay.example>")
    again = build_email(notice, "Recipe Relay <relay@relay.example>")
    assert first["Message-ID"] == again["Message-ID"] == f"<{notice.notice_id}.failure@relay.example>"
    assert first["To"] == "ops@example.com, oncall@example.com"
    assert "\n" not in first["Subject"]


class FakeMailer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise TransientError("SMTP server unavailable")
        self.sent.append(message)


class FakeSent:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def was_sent(self, notice_id: str) -> bool:
        return notice_id in self.ids

    async def record(self, notice: Notice) -> None:
        self.ids.add(notice.notice_id)


def ports(mailer: FakeMailer, sent: FakeSent, tenants: TenantsConfig = TENANTS) -> NotifierPorts:
    return NotifierPorts(tenants=tenants, from_address="relay@relay.example", mailer=mailer, sent=sent)


async def test_redelivered_outcome_is_mailed_once() -> None:
    mailer, sent = FakeMailer(), FakeSent()
    failed = outcome()
    await notify_outcome(failed, ports(mailer, sent))
    await notify_outcome(failed, ports(mailer, sent))
    assert len(mailer.sent) == 1


async def test_notice_is_recorded_only_after_the_server_accepted_it() -> None:
    mailer, sent = FakeMailer(failures=1), FakeSent()
    failed = outcome()
    with pytest.raises(TransientError):
        await notify_outcome(failed, ports(mailer, sent))
    assert sent.ids == set()
    await notify_outcome(failed, ports(mailer, sent))
    assert len(mailer.sent) == 1
    assert sent.ids == {stable_id(failed.delivery_id, "failed")}
