"""The ports of the notifier: the mail server, the record of notices already sent, and the bundle of both (with
the tenant config and sender) that the handler gets from the app context."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from relay_notifier.domain import Notice
from relay_platform.tenants import TenantsConfig


class Mailer(Protocol):
    """Sends one e-mail (``relay_platform.smtp.SmtpClient``); raises ``TransientError``/``PermanentError``."""

    async def send(self, message: EmailMessage) -> None: ...


class SentNotices(Protocol):
    """The notices already sent (``adapters.sent.SqlSentNotices``), so a redelivered outcome or state change mails
    no one twice."""

    async def was_sent(self, notice_id: str) -> bool: ...

    async def record(self, notice: Notice) -> None: ...


@dataclass(frozen=True, slots=True)
class NotifierPorts:
    """What the use case needs, opened once per process (``main``)."""

    tenants: TenantsConfig
    mailer: Mailer
    sent: SentNotices
    from_address: str
