"""The one SMTP client of deliver-email and the notifier: its settings, a small pool of kept-open connections
(aiosmtplib), and the error taxonomy's reading of SMTP failures.

Each service reads its own ``SmtpSettings`` subclass with its env prefix (``DELIVER_EMAIL_SMTP_*``,
``NOTIFIER_SMTP_*``) and opens one ``SmtpClient`` per process (``open_smtp_client``), in its lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from email.message import EmailMessage
from typing import Annotated, Literal, Self

import aiosmtplib
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_platform.errors import PermanentError, RelayError, TransientError

logger = logging.getLogger("relay.smtp")

SmtpSecurity = Literal["none", "opportunistic", "starttls", "tls"]
SmtpPort = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]
SendAttempts = Annotated[int, Field(ge=1, le=10)]

_ENHANCED_STATUS = re.compile(r"^\d\.\d{1,3}\.\d{1,3}")


class SmtpSettings(BaseSettings):
    """How to reach an SMTP server. A service subclasses it with its env prefix (``NOTIFIER_SMTP_``) and, where
    they differ, its own defaults; this class itself reads ``SMTP_*`` (never bare ``HOST``/``USERNAME``)."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: SmtpPort = 25
    # none: plain SMTP (local relays only); opportunistic: STARTTLS when the server offers it; starttls: STARTTLS
    # required (port 587); tls: implicit TLS (port 465).
    security: SmtpSecurity = "starttls"
    validate_certs: bool = True
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: Seconds = 30.0
    # Tries per message: a transient failure is tried again after `retry_wait_s`, doubling up to eight times that.
    # 1 leaves every retry to the caller (a deliverer's retry service).
    send_attempts: SendAttempts = 1
    retry_wait_s: float = Field(default=0.5, ge=0)
    # The notifier's switches from before `security`, still read (NOTIFIER_SMTP_USE_TLS, NOTIFIER_SMTP_START_TLS):
    # use_tls=true is `tls`; start_tls=true/false is `starttls`/`none`. An explicit `security` wins.
    use_tls: bool | None = Field(default=None, exclude=True, repr=False)
    start_tls: bool | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _older_tls_switches(self) -> Self:
        if "security" not in self.model_fields_set:
            if self.use_tls:
                self.security = "tls"
            elif self.start_tls is not None:
                self.security = "starttls" if self.start_tls else "none"
        return self

    @property
    def where(self) -> str:
        """``host:port``, for error texts."""
        return f"{self.host}:{self.port}"


def _reply(code: int, message: str) -> str:
    # Only the codes: the server's text may echo recipient addresses.
    enhanced = _ENHANCED_STATUS.match(message.strip())
    return f"{code} {enhanced.group(0)}" if enhanced else str(code)


def translate_smtp_error(error: Exception, where: str) -> RelayError:
    """An aiosmtplib/OS error as ``TransientError`` (try later) or ``PermanentError`` (the server refuses)."""
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


class SmtpClient:
    """Sends e-mails over up to ``connections`` SMTP connections, each opened on first use and kept for the next
    messages (concurrent sends beyond that wait for a free one).

    ``send`` raises ``TransientError`` or ``PermanentError`` (``translate_smtp_error``); it never logs addresses.
    """

    def __init__(self, settings: SmtpSettings, *, connections: int = 1) -> None:
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(self._client())

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            timeout=s.timeout_s,
            use_tls=s.security == "tls",
            # aiosmtplib: True = required, None = when the server offers it, False = never.
            start_tls={"starttls": True, "opportunistic": None}.get(s.security, False),
            validate_certs=s.validate_certs,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its ``To`` recipients, trying up to ``send_attempts`` times while it fails
        transiently."""
        attempts = self._settings.send_attempts
        client = await self._idle.get()
        try:
            for attempt in range(1, attempts + 1):
                try:
                    await self._send_on(client, message)
                except TransientError as error:
                    if attempt >= attempts:
                        raise
                    wait = min(self._settings.retry_wait_s * 2 ** (attempt - 1), self._settings.retry_wait_s * 8)
                    logger.warning(
                        "SMTP attempt %d of %d failed, trying again in %.2f s: %s", attempt, attempts, wait, error
                    )
                    await asyncio.sleep(wait)
                else:
                    return
        finally:
            self._idle.put_nowait(client)

    async def _send_on(self, client: aiosmtplib.SMTP, message: EmailMessage) -> None:
        where = self._settings.where
        # A connection kept from an earlier message may have been closed by the server while idle: reopen it
        # once, at once, without counting a try.
        may_reopen = client.is_connected
        while True:
            try:
                if not client.is_connected:
                    await client.connect()
                refused, reply = await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected as error:
                client.close()
                if may_reopen:
                    may_reopen = False
                    continue
                raise translate_smtp_error(error, where) from error
            except (aiosmtplib.SMTPException, OSError) as error:
                # Leave no half-spoken session behind for the next message.
                client.close()
                raise translate_smtp_error(error, where) from error
            except asyncio.CancelledError:
                # Cut off mid-session (an attempt's time budget): the next message starts on a fresh connection.
                client.close()
                raise
            break
        if refused:
            # How many were refused is enough to go and look; the addresses stay out of the logs.
            logger.warning("SMTP server %s refused %d of the message's recipients", where, len(refused))
        logger.debug("SMTP server %s accepted the message: %s", where, reply)

    async def aclose(self) -> None:
        """Say QUIT on every open connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
                client.close()


@asynccontextmanager
async def open_smtp_client(settings: SmtpSettings, *, connections: int = 1) -> AsyncIterator[SmtpClient]:
    """An ``SmtpClient`` for the lifetime of the process; nothing connects before the first message, so an SMTP
    outage never keeps a service from starting."""
    client = SmtpClient(settings, connections=connections)
    try:
        yield client
    finally:
        await client.aclose()
