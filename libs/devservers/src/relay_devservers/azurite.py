"""Real Azure Blob Storage (Azurite from npm, pinned in ``tools/azurite``) on a free loopback port.

Tests use the session fixture ``azurite`` from ``relay_testing.fixtures``::

    def test_upload(azurite: AzuriteBlob) -> None:
        container = azurite.create_container()          # a fresh, uniquely named container (or pass a name)
        azurite.sas_connection_string                   # account SAS with write permission, valid for a day
        azurite.connection_string                       # the account-key connection string (full access)
        azurite.make_sas_connection_string(expiry=...)  # expired / read-only / wrongly signed variants

Azurite itself comes from ``make node-deps`` (``npm ci`` in ``tools/azurite``). ``AzuriteBlob(workdir).start()`` /
``.stop()`` run the same server for ``make run``. Needs ``azure-storage-blob`` (imported when used).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from relay_devservers.processes import ServerProcess, free_port, wait_until

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

# Azurite's one built-in account and its published, well-known key (not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Read, add, create, write, list: what a customer's upload SAS allows (no delete).
WRITE_PERMISSIONS = "racwl"

_BINARY = Path("tools") / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def azurite_binary() -> Path:
    """``tools/azurite/node_modules/.bin/azurite-blob`` of this repository (``AZURITE_BLOB_BIN`` overrides)."""
    override = os.environ.get("AZURITE_BLOB_BIN")
    if override:
        return Path(override)
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / "tools" / "azurite" / "package.json").is_file():
                binary = folder / _BINARY
                if binary.exists():
                    return binary
                raise RuntimeError(f"Azurite is not installed at {binary}: run `make node-deps`")
    raise RuntimeError("cannot find tools/azurite (the repository root) to start Azurite: run `make node-deps`")


@dataclass
class AzuriteBlob:
    """One ``azurite-blob`` bound to 127.0.0.1, its data under ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """Account-key connection string: full access (for test set-up and checks)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def sas_connection_string(self) -> str:
        """Account-SAS connection string with write permission, valid for a day: what a customer configures."""
        return self.make_sas_connection_string()

    def make_sas_connection_string(
        self,
        *,
        permission: str = WRITE_PERMISSIONS,
        expiry: datetime | None = None,
        account_key: str = ACCOUNT_KEY,
    ) -> str:
        """An account-SAS connection string; pass a past ``expiry`` or another ``account_key`` to be refused."""
        from azure.storage.blob import ResourceTypes, generate_account_sas

        sas = generate_account_sas(
            ACCOUNT_NAME,
            account_key,
            resource_types=ResourceTypes(service=True, container=True, object=True),
            permission=permission,
            expiry=expiry or datetime.now(UTC) + timedelta(days=1),
            protocol="https,http",
        )
        return f"BlobEndpoint={self.blob_endpoint};SharedAccessSignature={sas}"

    def start(self, *, timeout: float = 30.0) -> AzuriteBlob:
        binary = azurite_binary()
        if shutil.which("node") is None:
            raise RuntimeError("Azurite needs Node.js (`node`) on PATH")
        data_dir = self.workdir / f"azurite-{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(data_dir),
            # Without it every call from azure-storage-blob 12.31 is refused (API version newer than Azurite's).
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        self.server = ServerProcess("azurite", argv, log_path=data_dir / "azurite.log", cwd=data_dir)
        self.server.wait_for_port(self.port, timeout=timeout)
        wait_until(self._answers, timeout=timeout, what="Azurite answering ListContainers")
        return self

    def _answers(self) -> bool:
        from azure.core.exceptions import AzureError

        if self.server is not None and not self.server.alive():
            raise RuntimeError(f"azurite exited; see {self.server.log_path}")
        try:
            with self.client() as client:
                next(iter(client.list_containers()), None)
        except AzureError:
            return False
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def client(self) -> BlobServiceClient:
        """A synchronous ``BlobServiceClient`` with the account key (close it, or use it as a context manager)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=1)

    def create_container(self, name: str | None = None) -> str:
        """Create a container (idempotent) and return its name; without a name, a unique ``test-<hex>`` one."""
        from azure.core.exceptions import ResourceExistsError

        container = name or f"test-{uuid.uuid4().hex[:16]}"
        with self.client() as client, contextlib.suppress(ResourceExistsError):
            client.create_container(container)
        return container
