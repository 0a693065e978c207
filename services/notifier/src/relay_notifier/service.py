"""The notifier's use cases: a final delivery outcome, or an integration paused as unhealthy or resumed as
recovered, becomes at most one e-mail, recorded once the server took it."""

from __future__ import annotations

import logging
from datetime import datetime

from relay_contracts.messages import DeliveryAttempted, IntegrationStateChanged
from relay_notifier.domain import Notice, build_email, is_news, notice_for, notice_for_change
from relay_notifier.ports import NotifierPorts

logger = logging.getLogger("relay.notifier")


async def notify_outcome(outcome: DeliveryAttempted, ports: NotifierPorts) -> Notice | None:
    """Send the notice ``outcome`` deserves (``domain.notice_for``) unless it was sent already; the notice sent,
    or ``None``."""
    notice = notice_for(outcome, ports.tenants)
    if notice is None or not await _send_once(notice, ports):
        return None
    logger.info(
        "sent %s notice for delivery %s (%s/%s) to %d recipients",
        notice.kind,
        notice.about,
        outcome.tenant,
        outcome.integration_id,
        len(notice.recipients),
    )
    return notice


async def notify_state_change(change: IntegrationStateChanged, ports: NotifierPorts, *, now: datetime) -> Notice | None:
    """Send the notice an integration's state change deserves (``domain.notice_for_change``: paused as unhealthy,
    resumed as recovered) unless it was sent already or is no longer news (``domain.is_news``); the notice sent, or
    ``None``."""
    if not is_news(change, now):
        logger.info(
            "state change %s of %s/%s is %s old: no notice",
            change.event_id,
            change.tenant,
            change.integration_id,
            now - change.changed_at,
        )
        return None
    notice = notice_for_change(change, ports.tenants)
    if notice is None or not await _send_once(notice, ports):
        return None
    logger.info(
        "sent %s notice for integration %s/%s (change %s) to %d recipients",
        notice.kind,
        change.tenant,
        change.integration_id,
        change.event_id,
        len(notice.recipients),
    )
    return notice


async def _send_once(notice: Notice, ports: NotifierPorts) -> bool:
    """Mail ``notice`` unless it was sent already; whether it was sent now."""
    if await ports.sent.was_sent(notice.notice_id):
        logger.info("%s notice about %s was already sent", notice.kind, notice.about)
        return False
    await ports.mailer.send(build_email(notice, ports.from_address))
    # Recorded only now: a crash before this line re-sends (same Message-ID) rather than never sending.
    await ports.sent.record(notice)
    return True
