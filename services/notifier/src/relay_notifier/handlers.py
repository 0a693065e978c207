"""Thin Kafka handler: a final outcome becomes at most one e-mail, recorded once the server accepted it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from faststream.kafka import KafkaRouter

from relay_contracts.messages import DeliveryAttempted
from relay_contracts.topics import DELIVERIES_OUTCOMES
from relay_notifier import service
from relay_notifier.service import SERVICE, Notice
from relay_platform.broker import consumer_options
from relay_platform.errors import TransientError
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import TenantsConfig

logger = logging.getLogger("relay.notifier")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SentNotices(Protocol):
    async def was_sent(self, notice_id: str) -> bool: ...

    async def record(self, notice: Notice) -> None: ...


class BuildEmail(Protocol):
    def __call__(self, notice: Notice, from_address: str, /) -> EmailMessage: ...


@dataclass
class Runtime:
    """What the handler needs; ``mailer`` and ``sent`` are set once the app has opened them."""

    tenants: TenantsConfig
    from_address: str
    build_email: BuildEmail
    mailer: Mailer | None = None
    sent: SentNotices | None = None

    def opened(self) -> tuple[Mailer, SentNotices]:
        if self.mailer is None or self.sent is None:
            raise TransientError("notifier is not started")
        return self.mailer, self.sent


async def handle_outcome(outcome: DeliveryAttempted, runtime: Runtime) -> None:
    notice = service.notice_for(outcome, runtime.tenants)
    if notice is None:
        return
    mailer, sent = runtime.opened()
    if await sent.was_sent(notice.notice_id):
        logger.info("%s notice for delivery %s was already sent", notice.kind, notice.delivery_id)
        return
    await mailer.send(runtime.build_email(notice, runtime.from_address))
    # Recorded only now: a crash before this line re-sends (same Message-ID) rather than never sending.
    await sent.record(notice)
    logger.info(
        "sent %s notice for delivery %s (%s/%s) to %d recipients",
        notice.kind,
        notice.delivery_id,
        outcome.tenant,
        outcome.integration_id,
        len(notice.recipients),
    )


def make_router(runtime: Runtime, kafka: KafkaSettings) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        DELIVERIES_OUTCOMES,
        **consumer_options(kafka, SERVICE),
        title=f"{SERVICE}:{DELIVERIES_OUTCOMES}",
        description="E-mail one success or failure notice per finished delivery to the integration's lists.",
    )
    async def on_outcome(outcome: DeliveryAttempted) -> None:
        await handle_outcome(outcome, runtime)

    return router
