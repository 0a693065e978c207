"""Where each bundle file goes on the SFTP server, and the upload plan (temporary name, then rename); no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from posixpath import join

from relay_contracts.messages import DeliverBundle
from relay_delivery.ports import FetchedFile
from relay_platform.naming import SEGMENT_MAX_BYTES, fit_file_name, fit_utf8, short_hash
from relay_platform.tenants import SftpIntegration

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_TAG_LENGTH = 12  # characters of the delivery ID in a temporary name
_TAG = re.compile(rf"[A-Za-z0-9_-]{{1,{_TAG_LENGTH}}}")
# A final name leaves room for ".", ".<tag>.part" around it in the temporary name.
FINAL_NAME_MAX = SEGMENT_MAX_BYTES - len(f"..{'x' * _TAG_LENGTH}.part")


@dataclass(frozen=True, slots=True)
class Upload:
    """Write ``data`` to ``temp_path`` then rename it over ``final_path`` (readers never see a half file)."""

    directory: str
    final_path: str
    temp_path: str
    data: bytes


def _segment(value: str) -> str:
    cleaned = _UNSAFE.sub("_", value).strip() or "_"
    return "_" if cleaned in {".", ".."} else fit_utf8(cleaned, SEGMENT_MAX_BYTES)


def target_directory(integration: SftpIntegration, request: DeliverBundle) -> str:
    """``directory`` plus the optional subfolder: the order number (recipe ID for a recipe-feed delivery) or
    the recipe ID, at most 255 UTF-8 bytes (a longer one is shortened deterministically)."""
    base = integration.directory.rstrip("/") or "/"
    if integration.subfolders == "order":
        return join(base, _segment(request.order.order_number if request.order else request.recipe_id))
    if integration.subfolders == "recipe":
        return join(base, _segment(request.recipe_id))
    return base


def _temp_tag(delivery_id: str) -> str:
    tag = delivery_id[:_TAG_LENGTH]
    return tag if _TAG.fullmatch(tag) else short_hash(delivery_id)


def plan(integration: SftpIntegration, request: DeliverBundle, files: Sequence[FetchedFile]) -> list[Upload]:
    """One ``Upload`` per file under its bundle name; the temporary name is hidden and per delivery.

    The final name keeps within ``FINAL_NAME_MAX`` UTF-8 bytes whatever the delivery, so the temporary
    ``.<name>.<tag>.part`` fits in 255 as well; the bundle-builder's names (200 bytes at most) are kept as they are.
    """
    directory = target_directory(integration, request)
    tag = _temp_tag(request.delivery_id)
    uploads = []
    for file in files:
        name = _file_segment(file.name)
        uploads.append(
            Upload(
                directory=directory,
                final_path=join(directory, name),
                temp_path=join(directory, f".{name}.{tag}.part"),
                data=file.data,
            )
        )
    return uploads


def _file_segment(value: str) -> str:
    cleaned = _UNSAFE.sub("_", value).strip() or "_"
    return "_" if cleaned in {".", ".."} else fit_file_name(cleaned, FINAL_NAME_MAX)
