"""The notifier's use case: a final delivery outcome becomes at most one e-mail, recorded once the server took it."""

from __future__ import annotations

import logging

from relay_contracts.messages import DeliveryAttempted
from relay_notifier.domain import Notice, build_email, notice_for
from relay_notifier.ports import NotifierPorts

logger = logging.getLogger("relay.notifier")


async def notify_outcome(outcome: DeliveryAttempted, ports: NotifierPorts) -> Notice | None:
    """Send the notice ``outcome`` deserves (``domain.notice_for``) unless it was sent already; the notice sent,
    or ``None``."""
    notice = notice_for(outcome, ports.tenants)
    if notice is None:
        return None
    if await ports.sent.was_sent(notice.notice_id):
        logger.info("%s notice for delivery %s was already sent", notice.kind, notice.delivery_id)
        return None
    await ports.mailer.send(build_email(notice, ports.from_address))
    # Recorded only now: a crash before this line re-sends (same Message-ID) rather than never sending.
    await ports.sent.record(notice)
    logger.info(
        "sent %s notice for delivery %s (%s/%s) to %d recipients",
        notice.kind,
        notice.delivery_id,
        outcome.tenant,
        outcome.integration_id,
        len(notice.recipients),
    )
    return notice
