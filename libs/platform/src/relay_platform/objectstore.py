"""Object store port with a local-directory adapter (the embedded default); S3 lives in ``objectstore_s3``."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from relay_platform.errors import PermanentError, TransientError


class ObjectNotFoundError(PermanentError):
    """No object under that key."""


class ObjectStore(Protocol):
    """Keys are ``/``-separated relative paths; writes are atomic and idempotent (same key overwrites)."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def ping(self) -> None: ...


def checked_key(key: str) -> PurePosixPath:
    """Refuse keys that could escape the store's root."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in {"", ".", ".."} for part in key.split("/")):
        raise PermanentError(f"invalid object key {key!r}")
    return path


class LocalDirectoryStore:
    """Objects as files under a root directory; rename-into-place makes each write atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).parts)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:  # noqa: ARG002 - files carry no type
        await asyncio.to_thread(self._put_sync, self._path(key), data)

    @staticmethod
    def _put_sync(target: Path, data: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(tmp_name).replace(target)
        except OSError as error:
            raise TransientError(f"cannot write object: {error.strerror}") from error

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as error:
            raise ObjectNotFoundError(f"no object {key!r}") from error
        except OSError as error:
            raise TransientError(f"cannot read object: {error.strerror}") from error

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise TransientError(f"object store directory unusable: {error.strerror}") from error
