"""The demo tenant in config/dev.yaml points at exactly the servers `make run` starts."""

from pathlib import Path

from relay_cli.demo import DEMO_BUCKET, DEMO_CONTAINER, DEMO_PORTS
from relay_platform.tenants import (
    AzureBlobIntegration,
    EmailIntegration,
    S3Integration,
    SftpIntegration,
    ZapierIntegration,
    load_tenants,
)

ROOT = Path(__file__).resolve().parents[2]


def test_demo_integrations_point_at_the_local_demo_servers() -> None:
    integrations = {i.type: i for i in load_tenants(ROOT / "config" / "dev.yaml").tenants["demo"].integrations}
    assert set(integrations) == {"email", "sftp", "s3", "azure-blob", "zapier"}
    sftp, s3 = integrations["sftp"], integrations["s3"]
    zapier, azure = integrations["zapier"], integrations["azure-blob"]
    assert isinstance(sftp, SftpIntegration)
    assert (sftp.host, sftp.port) == ("127.0.0.1", DEMO_PORTS["sftp"])
    assert isinstance(s3, S3Integration)
    assert s3.endpoint_url == f"http://127.0.0.1:{DEMO_PORTS['s3']}"
    assert s3.bucket == DEMO_BUCKET
    assert isinstance(azure, AzureBlobIntegration)
    assert azure.container == DEMO_CONTAINER
    assert isinstance(zapier, ZapierIntegration)
    assert zapier.hook_url.resolve().get_secret_value().startswith(f"http://127.0.0.1:{DEMO_PORTS['hooks']}/")
    assert isinstance(integrations["email"], EmailIntegration)
