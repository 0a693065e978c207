"""The ports of deliver-azure-blob: what writes one block blob (``adapters.blob.AzureBlobUploader``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import SecretStr


class BlobUploader(Protocol):
    """Writes one block blob (overwriting), translating SDK errors into ``TransientError``/``PermanentError``."""

    async def put(
        self,
        connection_string: SecretStr,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> None: ...
