"""Where each bundle file goes on the SFTP server, and the upload plan (temporary name, then rename)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from posixpath import join
from typing import Protocol

from relay_contracts.messages import DeliverBundle
from relay_delivery import FetchedFile
from relay_platform.tenants import SftpIntegration

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True, slots=True)
class Upload:
    """Write ``data`` to ``temp_path`` then rename it over ``final_path`` (readers never see a half file)."""

    directory: str
    final_path: str
    temp_path: str
    data: bytes


class SftpUploader(Protocol):
    """Uploads files for one integration; raises ``TransientError``/``PermanentError``."""

    async def upload(self, integration: SftpIntegration, uploads: Sequence[Upload]) -> None: ...


def _segment(value: str) -> str:
    cleaned = _UNSAFE.sub("_", value).strip() or "_"
    return "_" if cleaned in {".", ".."} else cleaned[:128]


def target_directory(integration: SftpIntegration, request: DeliverBundle) -> str:
    """``directory`` plus the optional subfolder: the order number (recipe ID for a recipe-feed delivery) or
    the recipe ID."""
    base = integration.directory.rstrip("/") or "/"
    if integration.subfolders == "order":
        return join(base, _segment(request.order.order_number if request.order else request.recipe_id))
    if integration.subfolders == "recipe":
        return join(base, _segment(request.recipe_id))
    return base


def plan(integration: SftpIntegration, request: DeliverBundle, files: Sequence[FetchedFile]) -> list[Upload]:
    """One ``Upload`` per file under its bundle name; the temporary name is hidden and per delivery."""
    directory = target_directory(integration, request)
    uploads = []
    for file in files:
        name = _segment(file.name)
        uploads.append(
            Upload(
                directory=directory,
                final_path=join(directory, name),
                temp_path=join(directory, f".{name}.{request.delivery_id[:12]}.part"),
                data=file.data,
            )
        )
    return uploads


class SftpDestination:
    """The sftp ``Destination``."""

    def __init__(self, uploader: SftpUploader) -> None:
        self._uploader = uploader

    async def deliver(self, integration: SftpIntegration, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        await self._uploader.upload(integration, plan(integration, request, files))
