"""The one SMTP client's settings and error translation: both services' variable names, no server text echoed."""

import aiosmtplib
import pytest
from pydantic_settings import SettingsConfigDict

from relay_platform.errors import PermanentError, TransientError
from relay_platform.smtp import SmtpSettings
from relay_platform.smtp import translate_smtp_error as classify


class ServiceSmtp(SmtpSettings):
    model_config = SettingsConfigDict(env_prefix="SVC_SMTP_", extra="ignore")


def test_smtp_errors_are_classified_without_echoing_server_text() -> None:
    auth = classify(aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad user secret-user"), "mx:25")
    refused = classify(
        aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "5.1.1 <x@y> unknown", "x@y")]), "mx:25"
    )
    deferred = classify(aiosmtplib.SMTPDataError(451, "4.3.0 try later"), "mx:25")

    assert isinstance(auth, PermanentError)
    assert str(auth) == "SMTP server mx:25 rejected the configured credentials (535 5.7.8)"
    assert isinstance(refused, PermanentError)
    assert "x@y" not in str(refused)
    assert isinstance(deferred, TransientError)
    assert isinstance(classify(aiosmtplib.SMTPConnectError("refused"), "mx:25"), TransientError)


def test_recipients_refused_only_in_part_permanently_are_deferred() -> None:
    mixed = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "no", "a@b"), aiosmtplib.SMTPRecipientRefused(451, "later", "c@d")]
    )
    assert isinstance(classify(mixed, "mx:25"), TransientError)


def test_settings_come_from_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SVC_SMTP_HOST": "mail.example",
        "SVC_SMTP_PORT": "465",
        "SVC_SMTP_SECURITY": "tls",
        "SVC_SMTP_VALIDATE_CERTS": "false",
        "SVC_SMTP_USERNAME": "relay",
        "SVC_SMTP_PASSWORD": "pw-smtp",
        "SVC_SMTP_TIMEOUT_S": "12",
        "SVC_SMTP_SEND_ATTEMPTS": "2",
        "SVC_SMTP_RETRY_WAIT_S": "0.1",
    }.items():
        monkeypatch.setenv(name, value)

    settings = ServiceSmtp()

    assert (settings.host, settings.port, settings.security, settings.validate_certs) == (
        "mail.example",
        465,
        "tls",
        False,
    )
    assert settings.username == "relay"
    assert settings.password is not None
    assert settings.password.get_secret_value() == "pw-smtp"
    assert (settings.timeout_s, settings.send_attempts, settings.retry_wait_s) == (12, 2, 0.1)
    assert "pw-smtp" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "security"),
    [
        ({}, "starttls"),
        ({"SVC_SMTP_USE_TLS": "true"}, "tls"),
        ({"SVC_SMTP_START_TLS": "true"}, "starttls"),
        ({"SVC_SMTP_START_TLS": "false"}, "none"),
        ({"SVC_SMTP_USE_TLS": "false", "SVC_SMTP_START_TLS": "false"}, "none"),
        ({"SVC_SMTP_START_TLS": "false", "SVC_SMTP_SECURITY": "starttls"}, "starttls"),
    ],
)
def test_the_older_tls_switches_still_choose_the_security(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], security: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    assert ServiceSmtp().security == security
