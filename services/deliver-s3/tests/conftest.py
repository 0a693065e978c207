"""deliver-s3 test fixtures: SeaweedFS buckets, the tenant file, secrets in the environment, settings, outcomes."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from relay_deliver_s3.settings import MIB, Settings, UploadSettings
from relay_delivery.testing import OutcomeCollector
from relay_devservers.seaweedfs import SeaweedS3
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import S3Integration, TenantsConfig, load_tenants
from relay_testing.shared_secrets import link_settings

TENANTS_TEMPLATE = Path(__file__).parent / "tenants.yaml"
BUCKET = "deliver-s3-orders"
WRONG_ACCESS_KEY = "AKIAWRONGWRONGWRONG1"
WRONG_SECRET_KEY = "wrong-secret-wrong-secret-wrong-secret-00"


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedS3) -> str:
    return seaweedfs.create_bucket(BUCKET)


@pytest.fixture(scope="session")
def s3_secrets(seaweedfs: SeaweedS3) -> Iterator[None]:
    """The integrations' ${ENV} secrets: the real SeaweedFS keys, and a pair it does not know."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DELIVER_S3_TEST_ACCESS_KEY", seaweedfs.access_key)
        env.setenv("DELIVER_S3_TEST_SECRET_KEY", seaweedfs.secret_key)
        env.setenv("DELIVER_S3_TEST_WRONG_ACCESS_KEY", WRONG_ACCESS_KEY)
        env.setenv("DELIVER_S3_TEST_WRONG_SECRET_KEY", WRONG_SECRET_KEY)
        yield


@pytest.fixture(scope="session")
def tenants_file(seaweedfs: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deliver-s3") / "tenants.yaml"
    path.write_text(TENANTS_TEMPLATE.read_text().replace("{endpoint_url}", seaweedfs.endpoint_url))
    return path


@pytest.fixture(scope="session")
def tenants(tenants_file: Path) -> TenantsConfig:
    return load_tenants(tenants_file)


@pytest.fixture(scope="session")
def integrations(tenants: TenantsConfig) -> dict[str, S3Integration]:
    return {i.id: i for i in tenants.tenants["acme"].integrations if isinstance(i, S3Integration)}


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("s3-artifacts")


@pytest.fixture(scope="session")
def store(artifacts_dir: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(artifacts_dir)


@pytest.fixture(scope="session")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


@pytest.fixture(scope="session")
def settings(kafka_bootstrap: str, tenants_file: Path, artifacts_dir: Path) -> Settings:
    """Settings for the test servers; a 1 MiB multipart threshold so a 6 MiB file goes up in two parts."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        object_store=ObjectStoreSettings(url=f"file://{artifacts_dir}"),
        links=link_settings(),
        tenants_file=tenants_file,
        uploads=UploadSettings(
            multipart_threshold_bytes=1 * MIB,
            multipart_part_size_bytes=5 * MIB,
            client_max_attempts=1,
            connect_timeout_s=2,
        ),
        concurrency=2,
    )
