"""The ports of deliver-email: what sends the composed e-mail (``relay_platform.smtp.SmtpClient``)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class MailSender(Protocol):
    """Sends one message to its ``To`` recipients; raises ``TransientError``/``PermanentError``."""

    async def send(self, message: EmailMessage) -> None: ...
