"""The SMTP client against a real server: connections are kept and reused, a connection the server dropped is
reopened, transient failures are tried ``send_attempts`` times, an unreachable server is a transient error."""

import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay_devservers.processes import free_port
from relay_devservers.smtp import SmtpCapture
from relay_platform.errors import PermanentError, TransientError
from relay_platform.smtp import SmtpClient, SmtpSettings, open_smtp_client

pytestmark = pytest.mark.integration


def mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "relay@relay.test", "ops@acme.example", subject
    message.set_content("hello")
    return message


def settings_for(server: SmtpCapture, **fields: object) -> SmtpSettings:
    return SmtpSettings.model_validate(
        {
            "port": server.port,
            "security": "none",
            "username": server.username,
            "password": SecretStr(server.password or ""),
            **fields,
        }
    )


async def test_pooled_connection_sends_consecutive_messages(smtp_server: SmtpCapture) -> None:
    pool = SmtpClient(settings_for(smtp_server), connections=1)
    try:
        await pool.send(mail("pool-one"))
        await pool.send(mail("pool-two"))
    finally:
        await pool.aclose()

    subjects = [m.message["Subject"] for m in smtp_server.messages()]
    assert {"pool-one", "pool-two"} <= set(subjects)


async def test_unreachable_smtp_server_is_transient() -> None:
    settings = SmtpSettings(port=free_port(), security="none", timeout_s=2)
    pool = SmtpClient(settings, connections=1)
    with pytest.raises(TransientError, match=r"SMTP server 127\.0\.0\.1"):
        await pool.send(mail("nowhere"))
    await pool.aclose()


async def test_wrong_credentials_are_permanent_and_not_tried_again(smtp_server: SmtpCapture) -> None:
    settings = settings_for(smtp_server, password=SecretStr("not-the-password"), send_attempts=3)
    async with open_smtp_client(settings) as client:
        with pytest.raises(PermanentError, match=r"rejected the configured credentials \(535"):
            await client.send(mail("wrong-password"))


async def test_a_connection_the_server_dropped_while_idle_is_reopened(tmp_path: Path) -> None:
    server = SmtpCapture(tmp_path).start()
    try:
        async with open_smtp_client(SmtpSettings(port=server.port, security="none")) as client:
            await client.send(mail("before-restart"))
            server.stop()
            server.start()  # the kept connection is gone; the next send must not fail for it
            await client.send(mail("after-restart"))
        subjects = {m.message["Subject"] for m in server.messages()}
    finally:
        server.stop()
    assert {"before-restart", "after-restart"} <= subjects


async def test_a_transient_failure_is_tried_send_attempts_times() -> None:
    connections = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    refuser = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = refuser.sockets[0].getsockname()[1]
    try:
        settings = SmtpSettings(port=port, security="none", timeout_s=2, send_attempts=3, retry_wait_s=0.01)
        async with open_smtp_client(settings) as client:
            with pytest.raises(TransientError):
                await client.send(mail("hung-up"))
    finally:
        refuser.close()
        await refuser.wait_closed()
    assert connections == 3
