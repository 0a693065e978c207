"""deliver-sftp test fixtures: both real SFTP servers, the tenant file filled in for them, the running app."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream import FastStream

from relay_deliver_sftp.main import create_app
from relay_deliver_sftp.settings import Settings, SftpSettings
from relay_delivery.testing import OutcomeCollector, running_app
from relay_devservers.processes import free_port
from relay_devservers.sftp import SftpAccount
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import link_settings

TENANTS_TEMPLATE = Path(__file__).parent / "tenants.yaml"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path_factory.mktemp("sftp-artifacts"))


@pytest.fixture(scope="session")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


@pytest.fixture(scope="session")
def tenants_file(
    tmp_path_factory: pytest.TempPathFactory, openssh_sftp: SftpAccount, asyncssh_sftp: SftpAccount
) -> Path:
    text = TENANTS_TEMPLATE.read_text().format(
        openssh_port=openssh_sftp.port,
        openssh_user=openssh_sftp.username,
        openssh_host_key=openssh_sftp.host_public_key,
        asyncssh_port=asyncssh_sftp.port,
        asyncssh_user=asyncssh_sftp.username,
        asyncssh_host_key=asyncssh_sftp.host_public_key,
        closed_port=free_port(),
    )
    path = tmp_path_factory.mktemp("sftp-tenants") / "tenants.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
async def sftp_app(
    kafka_bootstrap: str,
    store: LocalDirectoryStore,
    tenants_file: Path,
    openssh_sftp: SftpAccount,
    asyncssh_sftp: SftpAccount,
) -> AsyncIterator[FastStream]:
    """deliver-sftp running against both servers; the integrations' secrets set in the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_SFTP_OPENSSH_PASSWORD", openssh_sftp.password)
        env.setenv("TEST_SFTP_OPENSSH_PRIVATE_KEY", openssh_sftp.client_private_key)
        env.setenv("TEST_SFTP_ASYNCSSH_PASSWORD", asyncssh_sftp.password)
        env.setenv("TEST_SFTP_WRONG_PASSWORD", "definitely-not-it")
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
            object_store=ObjectStoreSettings(url=f"file://{store.root}"),
            links=link_settings(),
            tenants_file=tenants_file,
            concurrency=1,
            sftp=SftpSettings(connect_timeout_s=5),
        )
        async with running_app(create_app(settings)) as app:
            yield app
