"""The SMTP pool against a real server: connections are reused, an unreachable server is a transient error."""

from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay_deliver_email.adapters.smtp import SmtpPool
from relay_deliver_email.settings import Settings
from relay_platform.errors import TransientError
from relay_testing import shared_secrets
from relay_testing.processes import free_port
from relay_testing.smtp import SmtpCapture

pytestmark = pytest.mark.integration


def mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "relay@relay.test", "ops@acme.example", subject
    message.set_content("hello")
    return message


async def test_pooled_connection_sends_consecutive_messages(smtp_server: SmtpCapture, tmp_path: Path) -> None:
    settings = Settings(
        smtp_port=smtp_server.port,
        smtp_security="none",
        smtp_username=smtp_server.username,
        smtp_password=SecretStr(smtp_server.password or ""),
        links=shared_secrets.link_settings(),
        tenants_file=tmp_path / "unused.yaml",
    )
    pool = SmtpPool(settings, size=1)
    try:
        await pool.send(mail("pool-one"))
        await pool.send(mail("pool-two"))
    finally:
        await pool.aclose()

    subjects = [m.message["Subject"] for m in smtp_server.messages()]
    assert {"pool-one", "pool-two"} <= set(subjects)


async def test_unreachable_smtp_server_is_transient(tmp_path: Path) -> None:
    settings = Settings(
        smtp_port=free_port(),
        smtp_security="none",
        smtp_timeout_s=2,
        links=shared_secrets.link_settings(),
        tenants_file=tmp_path / "x",
    )
    pool = SmtpPool(settings, size=1)
    with pytest.raises(TransientError, match=r"SMTP server 127\.0\.0\.1"):
        await pool.send(mail("nowhere"))
    await pool.aclose()
