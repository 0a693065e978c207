"""Sending notices over SMTP (aiosmtplib): one connection, opened lazily and reused; hiccups retried in-process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from relay_notifier.service import Notice
from relay_platform.errors import PermanentError, TransientError

logger = logging.getLogger("relay.notifier.smtp")

_PERMANENT_FROM = 500


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    from_address: str
    use_tls: bool = False
    start_tls: bool | None = None
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 10.0
    send_attempts: int = 3
    retry_wait_s: float = 0.5


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


class SmtpMailer:
    """Sends e-mails; ``TransientError`` when the server stays unreachable, ``PermanentError`` when it refuses."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def send(self, message: EmailMessage) -> None:
        config = self._config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(config.send_attempts),
            wait=wait_exponential(multiplier=config.retry_wait_s, max=max(config.retry_wait_s * 8, 0.01)),
            retry=retry_if_not_exception_type(PermanentError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._send_once(message, attempt.retry_state.attempt_number)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientError(f"SMTP server unavailable: {_describe(error)}") from error

    async def _send_once(self, message: EmailMessage, attempt: int) -> None:
        async with self._lock:
            try:
                client = await self._connected()
                refused, _ = await client.send_message(message)
            except aiosmtplib.SMTPRecipientsRefused as error:
                codes = [refusal.code for refusal in error.recipients]
                if all(code >= _PERMANENT_FROM for code in codes):
                    raise PermanentError(f"SMTP server refused every recipient ({codes})") from error
                await self._drop()
                raise
            except aiosmtplib.SMTPResponseException as error:
                await self._drop()
                if error.code >= _PERMANENT_FROM:
                    raise PermanentError(f"SMTP server refused the notice: {_describe(error)}") from error
                logger.warning("SMTP attempt %d failed: %s", attempt, _describe(error))
                raise
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                await self._drop()
                logger.warning("SMTP attempt %d failed: %s", attempt, _describe(error))
                raise
        if refused:
            # Addresses are not logged: how many were refused is enough to go and look.
            logger.warning("SMTP server refused %d of the notice's recipients", len(refused))

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            username=config.username,
            password=config.password.get_secret_value() if config.password is not None else None,
            timeout=config.timeout_s,
        )
        await client.connect()
        self._client = client
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


def _describe(error: BaseException) -> str:
    """Error class and SMTP code only: server texts can echo addresses."""
    code = getattr(error, "code", None)
    return f"{type(error).__name__}" + (f" {code}" if code is not None else "")
