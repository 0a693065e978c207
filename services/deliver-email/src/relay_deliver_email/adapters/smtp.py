"""SMTP over aiosmtplib: a small pool of kept-open connections, SMTP errors translated to the error taxonomy."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from email.message import EmailMessage

import aiosmtplib

from relay_deliver_email.settings import Settings
from relay_platform.errors import PermanentError, RelayError, TransientError

logger = logging.getLogger("relay.deliver_email.smtp")

_ENHANCED_STATUS = re.compile(r"^\d\.\d{1,3}\.\d{1,3}")


def _reply(code: int, message: str) -> str:
    # Only the codes: the server's text may echo recipient addresses.
    enhanced = _ENHANCED_STATUS.match(message.strip())
    return f"{code} {enhanced.group(0)}" if enhanced else str(code)


def classify(error: Exception, where: str) -> RelayError:
    """Translate an aiosmtplib/OS error into ``TransientError`` (try later) or ``PermanentError``."""
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return PermanentError(
            f"SMTP server {where} rejected the configured credentials ({_reply(error.code, error.message)})"
        )
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({r.code for r in error.recipients})
        text = ", ".join(str(c) for c in codes)
        if all(code >= 500 for code in codes):
            return PermanentError(f"SMTP server {where} refused all {len(error.recipients)} recipients ({text})")
        return TransientError(f"SMTP server {where} deferred the recipients ({text})")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        reply = _reply(error.code, error.message)
        if error.code >= 500:
            return PermanentError(f"SMTP server {where} refused the message ({reply})")
        return TransientError(f"SMTP server {where} deferred the message ({reply})")
    if isinstance(error, aiosmtplib.SMTPNotSupported):
        return PermanentError(f"SMTP server {where}: {error}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentError(f"SMTP server {where} presented a certificate that does not verify: {error.reason}")
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientError(f"SMTP server {where} timed out")
    if isinstance(error, aiosmtplib.SMTPException | OSError):
        return TransientError(f"cannot talk to SMTP server {where}: {type(error).__name__}: {error}")
    return TransientError(f"SMTP error with {where}: {type(error).__name__}")


class SmtpPool:
    """Up to ``size`` SMTP connections, opened on first use and kept for the next messages.

    A connection the server dropped while idle is reopened once, transparently, before the send is retried.
    """

    def __init__(self, settings: Settings, size: int) -> None:
        self._settings = settings
        self._where = f"{settings.smtp_host}:{settings.smtp_port}"
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(self._client())

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_s,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            validate_certs=s.smtp_validate_certs,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its ``To`` recipients on a pooled connection."""
        client = await self._idle.get()
        try:
            await self._send_on(client, message)
        finally:
            self._idle.put_nowait(client)

    async def _send_on(self, client: aiosmtplib.SMTP, message: EmailMessage) -> None:
        for reconnect in (False, True):
            try:
                if not client.is_connected:
                    await client.connect()
                _, reply = await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected as error:
                client.close()
                if reconnect:
                    raise classify(error, self._where) from error
                continue  # the server closed the idle connection; reconnect once
            except (aiosmtplib.SMTPException, OSError) as error:
                # Leave no half-spoken session behind for the next message.
                client.close()
                raise classify(error, self._where) from error
            logger.debug("SMTP accepted message: %s", reply)
            return

    async def aclose(self) -> None:
        """Say QUIT on every open connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
                client.close()


@asynccontextmanager
async def smtp_pool(settings: Settings, size: int) -> AsyncIterator[SmtpPool]:
    """An ``SmtpPool`` for the lifetime of the process."""
    pool = SmtpPool(settings, size)
    try:
        yield pool
    finally:
        await pool.aclose()
