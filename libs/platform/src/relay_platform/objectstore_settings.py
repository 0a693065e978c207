"""Where objects (recipes, bundle artifacts) are kept: a local directory by default, S3 in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlparse

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_platform.objectstore import LocalDirectoryStore, ObjectStore


class ObjectStoreSettings(BaseSettings):
    """``OBJECT_STORE_URL`` is ``file://<dir>`` (relative paths allowed) or ``s3://<bucket>/<prefix>``."""

    model_config = SettingsConfigDict(env_prefix="OBJECT_STORE_", extra="ignore")

    url: str = "file://var/objects"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None


def local_path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(parsed.netloc + parsed.path)


@asynccontextmanager
async def open_object_store(settings: ObjectStoreSettings) -> AsyncIterator[ObjectStore]:
    """Open the configured store for the lifetime of a process (clients are opened once, here)."""
    scheme = urlparse(settings.url).scheme
    if scheme == "file":
        yield LocalDirectoryStore(local_path(settings.url))
        return
    if scheme == "s3":
        # Imported here: aiobotocore is the optional extra `relay-platform[s3]`.
        from relay_platform.objectstore_s3 import S3ObjectStore

        parsed = urlparse(settings.url)
        if not parsed.netloc:
            msg = "OBJECT_STORE_URL s3:// needs a bucket: s3://<bucket>/<prefix>"
            raise ValueError(msg)
        key_id = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
        secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        async with S3ObjectStore.connect(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=key_id,
            secret_access_key=secret,
        ) as store:
            yield store
        return
    msg = f"OBJECT_STORE_URL scheme {scheme!r} is not supported (use file:// or s3://)"
    raise ValueError(msg)
