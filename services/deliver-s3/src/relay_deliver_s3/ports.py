"""The ports of deliver-s3: what writes one object (``adapters.s3.S3Uploader``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from relay_deliver_s3.domain import S3Target


class Uploader(Protocol):
    """Writes one object (overwriting), translating SDK errors into ``TransientError``/``PermanentError``."""

    async def put(
        self, target: S3Target, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None: ...
