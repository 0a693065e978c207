"""deliver-azure-blob test fixtures: Azurite containers, SAS connection strings in the environment, settings."""

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay_deliver_azure_blob.settings import BlobSettings, Settings
from relay_delivery.testing import OutcomeCollector
from relay_devservers.azurite import AzuriteBlob
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import AzureBlobIntegration, TenantsConfig, load_tenants
from relay_testing.shared_secrets import link_settings

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"
CONTAINER = "deliver-azure-orders"
# A well-formed account key that is not Azurite's: signatures made with it do not match.
WRONG_ACCOUNT_KEY = base64.b64encode(b"not-the-account-key" * 3).decode()


@pytest.fixture(scope="session")
def container(azurite: AzuriteBlob) -> str:
    return azurite.create_container(CONTAINER)


@pytest.fixture(scope="session")
def azure_secrets(azurite: AzuriteBlob) -> Iterator[None]:
    """The integrations' ${ENV} connection strings: a valid write SAS, and SASes Azurite must refuse."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DELIVER_AZURE_BLOB_TEST_SAS", azurite.sas_connection_string)
        env.setenv(
            "DELIVER_AZURE_BLOB_TEST_WRONG_SAS", azurite.make_sas_connection_string(account_key=WRONG_ACCOUNT_KEY)
        )
        env.setenv(
            "DELIVER_AZURE_BLOB_TEST_EXPIRED_SAS",
            azurite.make_sas_connection_string(expiry=datetime.now(UTC) - timedelta(hours=1)),
        )
        env.setenv("DELIVER_AZURE_BLOB_TEST_READ_ONLY_SAS", azurite.make_sas_connection_string(permission="rl"))
        yield


@pytest.fixture(scope="session")
def tenants() -> TenantsConfig:
    return load_tenants(TENANTS_FILE)


@pytest.fixture(scope="session")
def integrations(tenants: TenantsConfig) -> dict[str, AzureBlobIntegration]:
    return {i.id: i for i in tenants.tenants["acme"].integrations if isinstance(i, AzureBlobIntegration)}


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("azure-artifacts")


@pytest.fixture(scope="session")
def store(artifacts_dir: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(artifacts_dir)


@pytest.fixture(scope="session")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


@pytest.fixture(scope="session")
def settings(kafka_bootstrap: str, artifacts_dir: Path) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        object_store=ObjectStoreSettings(url=f"file://{artifacts_dir}"),
        links=link_settings(),
        tenants_file=TENANTS_FILE,
        uploads=BlobSettings(client_retry_total=0),
        concurrency=2,
    )
