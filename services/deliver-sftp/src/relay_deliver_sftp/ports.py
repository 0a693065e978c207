"""The ports of deliver-sftp: what uploads a planned bundle (``adapters.sftp.SftpPool``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay_deliver_sftp.domain import Upload
from relay_platform.tenants import SftpIntegration


class SftpUploader(Protocol):
    """Uploads files for one integration; raises ``TransientError``/``PermanentError``."""

    async def upload(self, integration: SftpIntegration, uploads: Sequence[Upload]) -> None: ...
