"""deliver-email test fixtures: artifact store, outcome collector and settings pointing at the real servers."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay_deliver_email.settings import EmailSmtpSettings, Settings
from relay_delivery.testing import OutcomeCollector
from relay_devservers.smtp import SmtpCapture
from relay_platform.links import LinkSettings
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing import shared_secrets

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"
LINKS = shared_secrets.link_settings(public_base_url="http://files.test:8080", ttl_s=3600)


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("email-artifacts")


@pytest.fixture(scope="session")
def store(artifacts_dir: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(artifacts_dir)


@pytest.fixture(scope="session")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


@pytest.fixture(scope="session")
def link_settings() -> LinkSettings:
    return LINKS


@pytest.fixture(scope="session")
def email_settings(kafka_bootstrap: str, smtp_server: SmtpCapture, artifacts_dir: Path) -> Callable[[], Settings]:
    """Builds settings for the SMTP capture server; the password comes from DELIVER_EMAIL_SMTP_PASSWORD."""
    return lambda: _email_settings(kafka_bootstrap, smtp_server, artifacts_dir)


def _email_settings(kafka_bootstrap: str, smtp: SmtpCapture, artifacts_dir: Path) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        object_store=ObjectStoreSettings(url=f"file://{artifacts_dir}"),
        links=LINKS,
        tenants_file=TENANTS_FILE,
        smtp=EmailSmtpSettings(host="127.0.0.1", port=smtp.port, security="none", username=smtp.username),
        from_address="Recipe Relay <relay@relay.test>",
        concurrency=2,
    )
