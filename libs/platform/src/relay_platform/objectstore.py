"""Object store port with a local-directory adapter (the embedded default); S3 lives in ``objectstore_s3``."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
import unicodedata
from contextlib import suppress
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from relay_platform.errors import PermanentError, TransientError
from relay_platform.naming import KEY_MAX_BYTES, SEGMENT_MAX_BYTES


class ObjectNotFoundError(PermanentError):
    """No object under that key."""


class ObjectStore(Protocol):
    """Keys are ``/``-separated relative paths; writes are atomic and idempotent (same key overwrites)."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def put_stream(self, key: str, body: IO[bytes], *, content_type: str) -> None:
        """Store what ``body`` holds from its current position to its end, read in bounded chunks in a worker
        thread (never all in memory): for large files spooled to disk."""

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def ping(self) -> None: ...


def checked_key(key: str) -> PurePosixPath:
    """Refuse keys that could escape the store's root or that no store can hold: at most ``KEY_MAX_BYTES`` UTF-8
    bytes, ``SEGMENT_MAX_BYTES`` per ``/``-separated segment, no control characters."""
    path = PurePosixPath(key)
    parts = key.split("/")
    if not key or path.is_absolute() or any(part in {"", ".", ".."} for part in parts):
        raise PermanentError(f"invalid object key {key!r}")
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in key):
        raise PermanentError(f"object key {key[:80]!r} contains a control character or is not valid UTF-8")
    size = len(key.encode())
    if size > KEY_MAX_BYTES:
        raise PermanentError(f"object key is {size} UTF-8 bytes, over the limit of {KEY_MAX_BYTES}: {key[:80]!r}...")
    for part in parts:
        if (part_size := len(part.encode())) > SEGMENT_MAX_BYTES:
            raise PermanentError(
                f"object key segment is {part_size} UTF-8 bytes, over the limit of {SEGMENT_MAX_BYTES}: "
                f"{part[:80]!r}..."
            )
    return path


# Where the same call fails again (a fault of the key or the data): nothing but a different input can help.
_PERMANENT_ERRNOS = {
    errno.ENAMETOOLONG: "the key's name is too long for the file system",
    errno.EINVAL: "the file system refuses the name or the request as such",
    errno.EISDIR: "the key names a directory (it is a prefix of other keys)",
    errno.ENOTDIR: "a segment of the key is a file, not a directory",
    errno.EEXIST: "a file stands where the key needs a directory",
    errno.EILSEQ: "the name is not valid in the file system's encoding",
    errno.EFBIG: "the object is larger than the file system allows",
    errno.ELOOP: "the key's path loops through symbolic links",
}
# Where the same call can succeed later, once load drops or an operator frees, remounts or fixes something. The
# store is one directory for the whole service, so these hit every message alike: failing each one for good would
# dead-letter the whole backlog for what is one outage.
_TRANSIENT_ERRNOS = {
    errno.ENOSPC: "the disk is full until space is freed",
    errno.EDQUOT: "the quota is used up until space is freed",
    errno.EIO: "a device or network file system faltered",
    errno.EAGAIN: "the resource is momentarily unavailable",
    errno.EINTR: "the call was interrupted",
    errno.EBUSY: "the file or device is momentarily busy",
    errno.EMFILE: "this process has too many open files for now",
    errno.ENFILE: "the system has too many open files for now",
    errno.ENOMEM: "memory is short for now",
    errno.EROFS: "the file system is mounted read-only until remounted",
    errno.EACCES: "the store directory's permissions are wrong until an operator fixes them",
    errno.EPERM: "the store directory's permissions are wrong until an operator fixes them",
    errno.ENOENT: "the store directory vanished (unmounted or removed) while writing",
    errno.ESTALE: "a network file system handle went stale; a new one will do",
    errno.ETIMEDOUT: "a network file system timed out",
}


def classify_os_error(error: OSError, what: str) -> PermanentError | TransientError:
    """The taxonomy error for a file-system ``OSError``, decided by its errno (unknown ones count as transient)."""
    code = error.errno if error.errno is not None else -1
    detail = f"{what}: {errno.errorcode.get(code, 'unknown error')} ({error.strerror or type(error).__name__})"
    if code in _PERMANENT_ERRNOS:
        return PermanentError(f"{detail}: {_PERMANENT_ERRNOS[code]}")
    return TransientError(f"{detail}: {_TRANSIENT_ERRNOS.get(code, 'may succeed on a later try')}")


_COPY_CHUNK = 1024 * 1024


class LocalDirectoryStore:
    """Objects as files under a root directory; rename-into-place makes each write atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).parts)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:  # noqa: ARG002 - files carry no type
        await asyncio.to_thread(self._put_sync, self._path(key), data)

    async def put_stream(self, key: str, body: IO[bytes], *, content_type: str) -> None:  # noqa: ARG002 - as put
        await asyncio.to_thread(self._put_sync, self._path(key), body)

    @staticmethod
    def _put_sync(target: Path, data: bytes | IO[bytes]) -> None:
        tmp_name: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, bytes):
                    handle.write(data)
                else:
                    shutil.copyfileobj(data, handle, _COPY_CHUNK)
            Path(tmp_name).replace(target)
        except OSError as error:
            if tmp_name is not None:
                with suppress(OSError):
                    Path(tmp_name).unlink(missing_ok=True)
            raise classify_os_error(error, "cannot write object") from error

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as error:
            raise ObjectNotFoundError(f"no object {key!r}") from error
        except OSError as error:
            raise classify_os_error(error, "cannot read object") from error

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.is_file)
        except OSError as error:
            raise classify_os_error(error, "cannot look up object") from error

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise classify_os_error(error, "object store directory unusable") from error
