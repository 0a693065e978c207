"""File names and object keys: seed 000's naming convention, sanitised and bounded; no I/O."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from urllib.parse import unquote, urlparse

from pathvalidate import sanitize_filename

from relay_contracts.messages import OrderLine

NAME_MAX = 80  # the <name> part, in characters
FILE_NAME_MAX = 200  # the whole file name, in characters (and 255 bytes at most)
RECIPE_FILE = "Recipe"
TICKET_FILE = "Ticket"
MANIFEST_FILE = "manifest.json"
EVENTS_DIR = "events"  # event bundles live beside, not over, the manufacturing bundle of the same order line

_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
# mimetypes' first guesses are not the ones people expect for these.
_PREFERRED_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/svg+xml": "svg",
    "image/tiff": "tif",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "application/json": "json",
    "application/octet-stream": "bin",
    "application/postscript": "eps",
}


# --- extensions and types ---------------------------------------------------------------------------------------


def url_extension(url: str) -> str | None:
    """The extension in a URL's path (``.../a.PNG?x`` -> ``png``), if it looks like one."""
    name = unquote(urlparse(url).path).rsplit("/", 1)[-1]
    if "." not in name:
        return None
    extension = name.rsplit(".", 1)[1].lower()
    return extension if _EXTENSION.match(extension) else None


def content_type_extension(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _PREFERRED_EXTENSIONS:
        return _PREFERRED_EXTENSIONS[media]
    guessed = mimetypes.guess_extension(media, strict=False)
    return guessed.lstrip(".") if guessed else "bin"


def mime_type_for(extension: str, content_type: str | None = None) -> str:
    if content_type and "/" in content_type:
        return content_type.split(";", 1)[0].strip().lower()
    guessed, _ = mimetypes.guess_type(f"x.{extension}", strict=False)
    return guessed or "application/octet-stream"


# --- names and keys ----------------------------------------------------------------------------------------------


def sanitize_part(text: str, *, limit: int = NAME_MAX, fallback: str = "file") -> str:
    """A safe name fragment: no separators, control characters or ``..``; whitespace as ``_``; bounded length."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    cleaned = re.sub(r"[\s/\\]+", "_", cleaned)
    cleaned = sanitize_filename(cleaned, replacement_text="_", platform="universal", max_len=limit * 4)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("._ ")
    return cleaned[:limit].rstrip("._ ") or fallback


def name_prefix(recipe_id: str, order: OrderLine | None) -> str:
    """Seed 000: ``<recipeId>-`` for the recipe feed, ``<orderNumber>_ID_<orderId>_R_<recipeId>_`` for an order."""
    recipe = sanitize_part(recipe_id, limit=64)
    if order is None:
        return f"{recipe}-"
    number = sanitize_part(order.order_number, limit=40)
    order_id = sanitize_part(order.order_id, limit=40)
    return f"{number}_ID_{order_id}_R_{recipe}_"


def file_name(prefix: str, stem: str, extension: str) -> str:
    room = max(8, min(NAME_MAX, FILE_NAME_MAX - len(prefix) - len(extension) - 1))
    return f"{prefix}{sanitize_part(stem, limit=room)}.{extension}"


def unique_names(names: Sequence[str]) -> list[str]:
    """Resolve collisions (case-insensitively) by ``-2``, ``-3``… in input order, so a rebuild names alike."""
    taken: set[str] = set()
    result: list[str] = []
    for name in names:
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, counter = name, 1
        while candidate.lower() in taken:
            counter += 1
            candidate = f"{stem}-{counter}{dot}{extension}"
        taken.add(candidate.lower())
        result.append(candidate)
    return result


def bundle_dir(tenant: str, recipe_id: str, order: OrderLine | None) -> str:
    """Deterministic object-store folder of a bundle, so a rebuild overwrites rather than duplicates."""
    tenant_part = sanitize_part(tenant, limit=64)
    recipe = sanitize_part(recipe_id, limit=128)
    if order is None:
        return f"bundles/{tenant_part}/recipes/{recipe}"
    order_id = sanitize_part(order.order_id, limit=128)
    item = sanitize_part(order.item_id or "", limit=128, fallback="order")
    return f"bundles/{tenant_part}/orders/{order_id}/{item}/{recipe}"
