"""Which integration state change gets a notice, what it says (never a secret, never the destination's settings),
and that a redelivered change sends nothing twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from relay_contracts.messages import IntegrationState, IntegrationStateChanged, StateChangeCause, stable_id
from relay_notifier.domain import Notice, build_email, notice_for_change
from relay_notifier.ports import NotifierPorts
from relay_notifier.service import notify_state_change
from relay_platform.tenants import load_tenants

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
UNHEALTHY_REASON = "5 consecutive failed attempts; last: TransientError: connection refused"


def change(
    cause: StateChangeCause = "unhealthy",
    *,
    state: IntegrationState | None = None,
    integration_id: str = "ops-hook",
    tenant: str = "nt",
    reason: str | None = UNHEALTHY_REASON,
) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex,
        tenant=tenant,
        integration_id=integration_id,
        state=state or ("active" if cause == "recovered" else "paused"),
        reason=reason,
        changed_by="destination-health" if cause != "operator" else "ops-key",
        changed_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        cause=cause,
    )


def test_unhealthy_pause_goes_to_the_failure_list_saying_what_it_means() -> None:
    paused = change()
    notice = notice_for_change(paused, TENANTS)
    assert notice is not None
    assert notice.kind == "unhealthy"
    assert notice.recipients == ("ops@example.com", "oncall@example.com")
    assert notice.notice_id == stable_id(paused.event_id, "unhealthy")
    assert notice.about == paused.event_id
    assert notice.subject == "[Recipe Relay] Integration paused: Factory Zapier hook — destination unhealthy"
    for fact in (
        "Integration:  Factory Zapier hook",
        "  id:         ops-hook",
        "Tenant:       nt",
        f"Reason:       {UNHEALTHY_REASON}",
        "When:         2026-11-22T12:00:00+00:00",
        "held: not attempted and not failed",
        "oldest first",
        "Integrations page",
        "POST /api/v2/integrations/ops-hook/resume",
    ):
        assert fact in notice.body


def test_recovery_goes_to_the_same_failure_list() -> None:
    resumed = change("recovered", reason="probe delivery succeeded")
    notice = notice_for_change(resumed, TENANTS)
    assert notice is not None
    assert (notice.kind, notice.recipients) == ("recovered", ("ops@example.com", "oncall@example.com"))
    assert notice.notice_id == stable_id(resumed.event_id, "recovered")
    assert notice.subject == "[Recipe Relay] Integration resumed: Factory Zapier hook — destination answering again"
    assert "Reason:       probe delivery succeeded" in notice.body
    assert "going out now, oldest first" in notice.body


def test_the_reason_is_scrubbed_again_and_the_destination_settings_are_never_named() -> None:
    leaky = "5 consecutive failed attempts; last: TransientError: GET https://h.example/x?apikey=s3cr3t-value refused"
    notice = notice_for_change(change(reason=leaky), TENANTS)
    assert notice is not None
    assert "s3cr3t-value" not in notice.body
    assert "apikey=***" in notice.body
    # The integration's settings (its hook URL here, a secret reference) are not part of the notice.
    assert "NOTIFIER_TEST_HOOK_URL" not in notice.body
    assert "hook-url" not in notice.body


def test_a_change_without_a_reason_says_so() -> None:
    notice = notice_for_change(change(reason=None), TENANTS)
    assert notice is not None
    assert "Reason:       not given" in notice.body


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("operator pause", change("operator", state="paused")),
        ("operator resume", change("operator", state="active")),
        ("unhealthy but active", change("unhealthy", state="active")),
        ("recovered but paused", change("recovered", state="paused")),
        ("no failure list", change(integration_id="quiet-hook")),
        ("unknown integration", change(integration_id="gone")),
        ("unknown tenant", change(tenant="elsewhere")),
    ],
)
def test_no_notice(case: str, message: IntegrationStateChanged) -> None:
    assert notice_for_change(message, TENANTS) is None, case


def test_the_same_id_in_another_tenant_goes_to_that_tenants_list() -> None:
    notice = notice_for_change(change(tenant="nt2"), TENANTS)
    assert notice is not None
    assert notice.recipients == ("ops@tenant2.example",)


def test_email_has_a_deterministic_message_id() -> None:
    notice = notice_for_change(change(), TENANTS)
    assert notice is not None
    first = build_email(notice, "Recipe Relay <relay@relay.example>")
    again = build_email(notice, "Recipe Relay <relay@relay.example>")
    assert first["Message-ID"] == again["Message-ID"] == f"<{notice.notice_id}.unhealthy@relay.example>"
    assert "\n" not in first["Subject"]


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


class FakeSent:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def was_sent(self, notice_id: str) -> bool:
        return notice_id in self.ids

    async def record(self, notice: Notice) -> None:
        self.ids.add(notice.notice_id)


async def test_a_redelivered_change_is_mailed_once_and_each_change_once() -> None:
    mailer, sent = FakeMailer(), FakeSent()
    ports = NotifierPorts(tenants=TENANTS, from_address="relay@relay.example", mailer=mailer, sent=sent)
    paused, resumed = change(), change("recovered")

    at = paused.changed_at + timedelta(minutes=1)
    assert await notify_state_change(paused, ports, now=at) is not None
    assert await notify_state_change(paused, ports, now=at) is None
    assert await notify_state_change(resumed, ports, now=at) is not None
    assert await notify_state_change(change("operator"), ports, now=at) is None

    assert [mail["Subject"].split(":")[0] for mail in mailer.sent] == [
        "[Recipe Relay] Integration paused",
        "[Recipe Relay] Integration resumed",
    ]
    assert sent.ids == {stable_id(paused.event_id, "unhealthy"), stable_id(resumed.event_id, "recovered")}


async def test_a_change_older_than_the_news_window_mails_no_one() -> None:
    """A group new to the compacted control topic reads every integration's last change again: old news stays old."""
    mailer, sent = FakeMailer(), FakeSent()
    ports = NotifierPorts(tenants=TENANTS, from_address="relay@relay.example", mailer=mailer, sent=sent)
    paused = change()

    assert await notify_state_change(paused, ports, now=paused.changed_at + timedelta(hours=7)) is None
    assert await notify_state_change(paused, ports, now=paused.changed_at + timedelta(hours=5)) is not None
    assert len(mailer.sent) == 1
