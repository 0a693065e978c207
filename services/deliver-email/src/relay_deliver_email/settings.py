"""deliver-email settings (env prefix ``DELIVER_EMAIL_``): the SMTP relay every email integration sends through
(``DELIVER_EMAIL_SMTP_*``) and the sender address."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_delivery import DelivererSettings
from relay_platform.smtp import SmtpSettings


class EmailSmtpSettings(SmtpSettings):
    """The SMTP relay (``DELIVER_EMAIL_SMTP_HOST``, ``_PORT``, ``_SECURITY``, ``_USERNAME``, ``_PASSWORD``...).

    One try per message: a transient failure is the retry service's to schedule.
    """

    model_config = SettingsConfigDict(env_prefix="DELIVER_EMAIL_SMTP_", extra="ignore")


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_EMAIL_", extra="ignore")

    consumer_group: str = Field(default="deliver-email", min_length=1)
    smtp: EmailSmtpSettings = Field(default_factory=EmailSmtpSettings)
    from_address: str = "Recipe Relay <relay@localhost>"
