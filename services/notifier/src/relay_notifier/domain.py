"""Which notice a delivery outcome or an integration's state change deserves, what it says, and the e-mail that
carries it; no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Literal

from relay_contracts.messages import DeliveryAttempted, IntegrationStateChanged, stable_id
from relay_platform.redact import redact_secrets
from relay_platform.tenants import IntegrationBase, TenantsConfig

SUBJECT_TAG = "[Recipe Relay]"
_MAX_ERROR_TEXT = 1000

# The sent table stores the kind as String(16), no CHECK: a new kind needs no migration while it stays that short.
NoticeKind = Literal["failure", "success", "unhealthy", "recovered"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One e-mail to send; ``notice_id`` is the same for every redelivery of the same outcome or change.

    ``about`` is what it is about: the delivery ID of an outcome's notice, the event ID of an integration's state
    change (kept in the sent table's ``delivery_id`` column, which keeps its first name).
    """

    notice_id: str
    kind: NoticeKind
    about: str
    recipients: tuple[str, ...]
    subject: str
    body: str


def notice_id(outcome: DeliveryAttempted) -> str:
    """The same for every redelivery of one outcome: a notice is sent at most once per delivery and status."""
    return stable_id(outcome.delivery_id, outcome.status)


def notice_for(outcome: DeliveryAttempted, tenants: TenantsConfig) -> Notice | None:
    """The notice for a final outcome, or ``None``: not final, nobody to tell, or an email integration's success
    (its recipients already got the files; seed 000: no duplicate)."""
    if not outcome.final or outcome.status == "retrying":
        return None
    integration = tenants.integration(outcome.tenant, outcome.integration_id)
    if integration is None:
        return None
    if outcome.status == "failed":
        recipients = integration.failure_notification_list
        kind: NoticeKind = "failure"
    else:
        if outcome.integration_type == "email":
            return None
        recipients = integration.success_notification_list
        kind = "success"
    if not recipients:
        return None
    subject = _subject(outcome, integration, kind)
    body = _failure_body(outcome, integration) if kind == "failure" else _success_body(outcome, integration)
    return Notice(
        notice_id=notice_id(outcome),
        kind=kind,
        about=outcome.delivery_id,
        recipients=recipients,
        subject=subject,
        body=body,
    )


def _label(integration: IntegrationBase) -> str:
    return integration.description.strip() or integration.id


def _what(outcome: DeliveryAttempted) -> str:
    if outcome.order is not None:
        return f"order {outcome.order.order_number}"
    return f"recipe {outcome.recipe_id}"


def _subject(outcome: DeliveryAttempted, integration: IntegrationBase, kind: NoticeKind) -> str:
    verb = "Delivery failed" if kind == "failure" else "Delivered"
    subject = f"{SUBJECT_TAG} {verb}: {_label(integration)} — {_what(outcome)}"
    # One line, bounded: a description must not be able to inject headers or run on.
    return " ".join(subject.split())[:250]


def _facts(outcome: DeliveryAttempted, integration: IntegrationBase) -> list[str]:
    lines = [
        f"Integration:  {_label(integration)}",
        f"  id:         {integration.id}",
        f"  type:       {outcome.integration_type}",
        f"Tenant:       {outcome.tenant}",
        f"Recipe ID:    {outcome.recipe_id}",
    ]
    if outcome.order is not None:
        lines.append(f"Order number: {outcome.order.order_number}")
        lines.append(f"Order ID:     {outcome.order.order_id}")
        if outcome.order.item_id:
            lines.append(f"Line item:    {outcome.order.item_id}")
    lines.append(f"Attempts:     {outcome.attempt}")
    lines.append(f"Delivery ID:  {outcome.delivery_id}")
    lines.append(f"When:         {outcome.occurred_at.isoformat(timespec='seconds')}")
    return lines


def retrigger_instructions(outcome: DeliveryAttempted) -> list[str]:
    """How an operator sends the bundle again: the trigger API or the ``relay`` CLI."""
    if outcome.order is not None:
        body = {"orderNumber": outcome.order.order_number}
        flag = f"--order-number {outcome.order.order_number}"
    else:
        body = {"recipeId": outcome.recipe_id}
        flag = f"--recipe-id {outcome.recipe_id}"
    return [
        "To deliver it again once the cause is fixed, trigger the integrations:",
        f"  POST /api/v2/integrations/trigger   {json.dumps(body)}",
        f"  relay trigger {flag}",
    ]


def _failure_body(outcome: DeliveryAttempted, integration: IntegrationBase) -> str:
    # Defence in depth: the deliverer scrubbed the message already; a notice must never carry a credential.
    error = redact_secrets(
        f"{outcome.error_class or 'unknown error'}: {outcome.error_message or ''}".strip().rstrip(":")
    )
    lines = [
        f"A delivery to the integration {_label(integration)!r} failed after {outcome.attempt} "
        f"attempt{'s' if outcome.attempt != 1 else ''} and will not be retried automatically.",
        "",
        *_facts(outcome, integration),
        f"Last error:   {error[:_MAX_ERROR_TEXT]}",
        "",
        *retrigger_instructions(outcome),
        "",
        "-- Recipe Relay",
    ]
    return "\n".join(lines) + "\n"


def _success_body(outcome: DeliveryAttempted, integration: IntegrationBase) -> str:
    lines = [
        f"The integration {_label(integration)!r} received the recipe files.",
        "",
        *_facts(outcome, integration),
    ]
    if outcome.files:
        lines += ["", "Files:", *(f"  {name}" for name in outcome.files)]
    lines += ["", "-- Recipe Relay"]
    return "\n".join(lines) + "\n"


# A pause or recovery older than this is no longer news: a consumer group new to the compacted control topic (a
# second deployment, a sent table started afresh) reads every integration's last change again, and must not mail
# lists about an outage that ended long ago.
CHANGE_NEWS_WINDOW = timedelta(hours=6)


def is_news(change: IntegrationStateChanged, now: datetime) -> bool:
    """Whether ``change`` is recent enough to tell anyone about."""
    return now - change.changed_at <= CHANGE_NEWS_WINDOW


def change_notice_id(change: IntegrationStateChanged) -> str:
    """The same for every redelivery of one state change: at most one notice per change."""
    return stable_id(change.event_id, change.cause)


# The destination-health rules publish only these pairs; a record where cause and state disagree tells no one.
_CHANGE_KINDS: dict[tuple[str, str], NoticeKind] = {
    ("unhealthy", "paused"): "unhealthy",
    ("recovered", "active"): "recovered",
}


def notice_for_change(change: IntegrationStateChanged, tenants: TenantsConfig) -> Notice | None:
    """The notice for an integration paused as unhealthy or resumed as recovered, to its failure list; ``None``
    for an operator's change (the operator knows), an unknown tenant or integration, or an empty list.

    Each change is told once (``change_notice_id``), not only the newest: a redelivered old "unhealthy" read after
    its "recovered" (a restart before the commit) may still send its notice once, late. That is accepted: the
    notice says when it happened, and holding state here to suppress it would buy little.
    """
    kind = _CHANGE_KINDS.get((change.cause, change.state))
    if kind is None:
        return None
    integration = tenants.integration(change.tenant, change.integration_id)
    if integration is None or not integration.failure_notification_list:
        return None
    return Notice(
        notice_id=change_notice_id(change),
        kind=kind,
        about=change.event_id,
        recipients=integration.failure_notification_list,
        subject=_change_subject(integration, kind),
        body=_change_body(change, integration, kind),
    )


def _change_subject(integration: IntegrationBase, kind: NoticeKind) -> str:
    if kind == "unhealthy":
        subject = f"{SUBJECT_TAG} Integration paused: {_label(integration)} — destination unhealthy"
    else:
        subject = f"{SUBJECT_TAG} Integration resumed: {_label(integration)} — destination answering again"
    return " ".join(subject.split())[:250]


def _change_body(change: IntegrationStateChanged, integration: IntegrationBase, kind: NoticeKind) -> str:
    # The reason was scrubbed by the retry service; scrubbed again here (defence in depth, as the failure body).
    # The integration's settings (hosts, URLs, addresses) are never named: the label and ID are enough to act.
    reason = redact_secrets(" ".join((change.reason or "").split())) or "not given"
    if kind == "unhealthy":
        opening = [
            f"The integration {_label(integration)!r} was paused automatically after too many failed delivery "
            "attempts in a row to its destination.",
        ]
        meaning = [
            "What this means:",
            "  New deliveries to this integration are held: not attempted and not failed. Nothing is lost.",
            "  Recipe Relay tries the destination again with the oldest held delivery, at growing intervals. When",
            "  one succeeds the integration resumes by itself and everything held goes out, oldest first.",
            "  Once the destination is fixed you can also resume it yourself, in the console's Integrations page or",
            f"  with POST /api/v2/integrations/{integration.id}/resume.",
        ]
    else:
        opening = [
            f"The integration {_label(integration)!r} is active again: a delivery to its destination succeeded.",
        ]
        meaning = [
            "What this means:",
            "  The deliveries held while it was paused are going out now, oldest first; new ones go out as usual.",
        ]
    lines = [
        *opening,
        "",
        f"Integration:  {_label(integration)}",
        f"  id:         {integration.id}",
        f"Tenant:       {change.tenant}",
        f"Reason:       {reason[:_MAX_ERROR_TEXT]}",
        f"When:         {change.changed_at.isoformat(timespec='seconds')}",
        "",
        *meaning,
        "",
        "-- Recipe Relay",
    ]
    return "\n".join(lines) + "\n"


def build_email(notice: Notice, from_address: str) -> EmailMessage:
    """The notice as a plain-text e-mail with a deterministic Message-ID (a resend is recognisably the same)."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "recipe-relay.invalid"
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = ", ".join(notice.recipients)
    message["Subject"] = notice.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{notice.notice_id}.{notice.kind}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(notice.body)
    return message
