"""One fetched asset's bytes, hashed as they arrive: in memory while small, else in an anonymous temporary file."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from relay_bundle_builder.ports import MemoryAllowance

# An asset stays in memory only up to this size (and while its bundle's memory allowance lasts).
SPOOL_MEMORY_MAX = 1024 * 1024


class AssetSpool:
    """An asset's bytes: in memory up to ``memory_max`` bytes while ``allowance`` has room, then rolled over to an
    anonymous temporary file (``TMPDIR``; unlinked at creation, so it is gone with the process or ``close``).

    Disk writes run in worker threads, so a slow disk never stalls the event loop. ``size`` and ``sha256`` are
    known once the last chunk is written: the object key carries the hash, so nothing is read twice to name it.
    """

    def __init__(self, *, allowance: MemoryAllowance | None = None, memory_max: int = SPOOL_MEMORY_MAX) -> None:
        self._allowance = allowance
        self._memory_max = memory_max
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None
        self._held = 0
        self._hash = hashlib.sha256()
        self.size = 0

    @classmethod
    def of(cls, data: bytes) -> AssetSpool:
        """A spool already holding ``data`` in memory (for bytes known up front: tests, fakes)."""
        spool = cls(memory_max=len(data))
        spool._hash.update(data)
        spool.size = len(data)
        spool._memory = io.BytesIO(data)
        return spool

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    async def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self._memory is not None:
            if self.size <= self._memory_max and self._hold(len(chunk)):
                self._memory.write(chunk)
                return
            await self._roll_over()
        if self._file is None:
            raise ValueError("write to a closed spool")
        await asyncio.to_thread(self._file.write, chunk)

    def reader(self) -> IO[bytes]:
        """The bytes as a binary file at its start (the same file each time: one reader at a time)."""
        current = self._memory if self._memory is not None else self._file
        if current is None:
            raise ValueError("read from a closed spool")
        current.seek(0)
        return current

    def read_bytes(self) -> bytes:
        """All the bytes in memory: only for small assets and tests."""
        return self.reader().read()

    def close(self) -> None:
        """Drop the bytes (the temporary file is deleted) and give back the memory allowance; idempotent."""
        for handle in (self._memory, self._file):
            if handle is not None:
                handle.close()
        self._memory = self._file = None
        self._release()

    def __enter__(self) -> AssetSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _hold(self, size: int) -> bool:
        if self._allowance is not None and not self._allowance.hold(size):
            return False
        self._held += size
        return True

    def _release(self) -> None:
        if self._allowance is not None and self._held:
            self._allowance.release(self._held)
        self._held = 0

    async def _roll_over(self) -> None:
        memory, self._memory = self._memory, None
        if memory is None:
            return
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), like the spool
        try:
            await asyncio.to_thread(self._file.write, memory.getvalue())
        finally:
            memory.close()
            self._release()
