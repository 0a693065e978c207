"""File names and object keys: seed 000's naming convention, sanitised and bounded in UTF-8 bytes; no I/O."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import unquote, urlparse

from pathvalidate import sanitize_filename

from relay_contracts.messages import OrderLine
from relay_platform.errors import PermanentError
from relay_platform.naming import (
    KEY_MAX_BYTES,
    SEGMENT_MAX_BYTES,
    fit_file_name,
    fit_utf8,
    short_hash,
    utf8_len,
)

# Every limit is in UTF-8 bytes (what file systems and S3 count); a part over its limit is cut at a character
# boundary and ends in ``~<8 hex>`` of its full text (relay_platform.naming), so it stays deterministic and unique.
NAME_MAX = 120  # the <name> part
FILE_NAME_MAX = 200  # a whole file name: under 255, so a deliverer can add a temporary suffix (``.x.part``)
EXTENSION_MAX = 16
STEM_MIN = 24  # room always left for the <name> part, however long the prefix
ORDER_NUMBER_MAX = 40  # in a file name prefix
ORDER_ID_MAX = 40  # in a file name prefix
RECIPE_ID_MAX = 64  # in a file name prefix
TENANT_SEGMENT_MAX = 64  # in a bundle directory
ID_SEGMENT_MAX = 128  # in a bundle directory: the 128 characters an ID may have, if they are ASCII
VERSION_LENGTH = 16  # hex digits of a file's SHA-256 in its object key
RECIPE_FILE = "Recipe"
TICKET_FILE = "Ticket"
MANIFEST_FILE = "manifest.json"
EVENTS_DIR = "events"  # event bundles live beside, not over, the manufacturing bundle of the same order line

_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
_SHA256 = re.compile(r"[0-9a-f]{16,64}")
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


# Cached: pathvalidate costs ~0.15 ms a call and a bundle makes a dozen, mostly for the same IDs and stems.
@lru_cache(maxsize=4096)
def sanitize_part(text: str, *, max_bytes: int = NAME_MAX, fallback: str = "file") -> str:
    """A safe name fragment of at most ``max_bytes`` UTF-8 bytes (and never over 255): no separators, control
    characters or ``..``; whitespace as ``_``; a longer one is cut and ends in ``~<hash of text>``."""
    max_bytes = min(max_bytes, SEGMENT_MAX_BYTES)
    cleaned = "".join(ch for ch in text if ch.isprintable())
    cleaned = re.sub(r"[\s/\\]+", "_", cleaned)
    if utf8_len(cleaned) > max_bytes:
        # Shortened before pathvalidate, which would cut at 255 bytes without telling apart what it cut off.
        cleaned = fit_utf8(cleaned, max_bytes, identity=text)
    cleaned = sanitize_filename(cleaned, replacement_text="_", platform="universal", max_len=SEGMENT_MAX_BYTES)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("._ ")
    # Cleaning only ever shortens, bar a reserved name (``con`` -> ``con_``); this is a guard, a no-op in practice.
    return fit_utf8(cleaned, max_bytes, identity=text) if utf8_len(cleaned) > max_bytes else cleaned or fallback


def name_prefix(recipe_id: str, order: OrderLine | None) -> str:
    """Seed 000: ``<recipeId>-`` for the recipe feed, ``<orderNumber>_ID_<orderId>_R_<recipeId>_`` for an order.

    At most 152 UTF-8 bytes (40 + 40 + 64 for the IDs), so a file name keeps room for its ``<name>``.
    """
    recipe = sanitize_part(recipe_id, max_bytes=RECIPE_ID_MAX)
    if order is None:
        return f"{recipe}-"
    number = sanitize_part(order.order_number, max_bytes=ORDER_NUMBER_MAX)
    order_id = sanitize_part(order.order_id, max_bytes=ORDER_ID_MAX)
    return f"{number}_ID_{order_id}_R_{recipe}_"


def file_name(prefix: str, stem: str, extension: str) -> str:
    """``<prefix><name>.<ext>`` in at most ``FILE_NAME_MAX`` UTF-8 bytes; ``prefix`` comes from ``name_prefix``."""
    tail = f".{sanitize_part(extension, max_bytes=EXTENSION_MAX, fallback='bin')}"
    prefix_room = FILE_NAME_MAX - utf8_len(tail) - STEM_MIN
    if utf8_len(prefix) > prefix_room:
        prefix = fit_utf8(prefix, prefix_room)
    room = min(NAME_MAX, FILE_NAME_MAX - utf8_len(prefix) - utf8_len(tail))
    return f"{prefix}{sanitize_part(stem, max_bytes=room)}{tail}"


def _collision_key(name: str) -> str:
    # Case-insensitive file systems (NTFS, APFS) also take composed and decomposed accents as one name.
    return unicodedata.normalize("NFC", name).casefold()


def unique_names(names: Sequence[str]) -> list[str]:
    """Resolve collisions (case-insensitively) by ``-2``, ``-3``… in input order, so a rebuild names alike; every
    name ends up within ``FILE_NAME_MAX`` bytes."""
    taken: set[str] = set()
    result: list[str] = []
    for original in names:
        name = fit_file_name(original, FILE_NAME_MAX)
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, counter = name, 1
        while _collision_key(candidate) in taken:
            counter += 1
            tail = f"-{counter}{dot}{extension}"
            candidate = f"{fit_utf8(stem, FILE_NAME_MAX - utf8_len(tail))}{tail}"
        taken.add(_collision_key(candidate))
        result.append(candidate)
    return result


def _id_segment(value: str, max_bytes: int, fallback: str = "file") -> str:
    """An ID as one key segment: itself when it is already safe; otherwise cleaned, plus ``~<hash of the ID>`` so
    two IDs that clean up alike (``a/b``, ``a b``) never share a directory."""
    cleaned = sanitize_part(value, max_bytes=max_bytes, fallback=fallback)
    if cleaned == value or cleaned.endswith(f"~{short_hash(value)}"):
        return cleaned
    return fit_utf8(cleaned, max_bytes, identity=value)


def bundle_dir(tenant: str, recipe_id: str, order: OrderLine | None) -> str:
    """Deterministic object-store folder of a bundle, so a rebuild lands in the same place.

    Each segment is at most 128 UTF-8 bytes (the tenant 64) and the whole at most 480, which leaves room under
    S3's 1,024 for a store prefix, ``events/<kind>``, the version folder and a file name.
    """
    tenant_part = _id_segment(tenant, TENANT_SEGMENT_MAX)
    recipe = _id_segment(recipe_id, ID_SEGMENT_MAX)
    if order is None:
        return f"bundles/{tenant_part}/recipes/{recipe}"
    order_id = _id_segment(order.order_id, ID_SEGMENT_MAX)
    item = "order" if order.item_id is None else _id_segment(order.item_id, ID_SEGMENT_MAX, fallback="order")
    return f"bundles/{tenant_part}/orders/{order_id}/{item}/{recipe}"


def object_key(directory: str, name: str, sha256: str) -> str:
    """``<directory>/<first 16 hex of sha256>/<name>``: content-versioned, so rebuilding a bundle never overwrites
    the object a delivery still in flight points at (its checksum stays valid), while the same bytes always get
    the same key.

    ``directory`` comes from ``bundle_dir`` (or a folder under it) and ``name`` from ``file_name``/``unique_names``;
    every segment stays within 255 UTF-8 bytes and the key within 1,024 (a longer name is shortened, keeping its
    extension). A directory that leaves no room, or a name that is not one segment, is a ``PermanentError``.
    """
    if not _SHA256.fullmatch(sha256):
        raise ValueError("sha256 must be lower-case hex digits of a SHA-256")
    segments = directory.split("/")
    if any(part in {"", ".", ".."} or utf8_len(part) > SEGMENT_MAX_BYTES for part in segments):
        raise PermanentError(f"bundle directory {directory[:80]!r} is not a relative key of bounded segments")
    if not name or name in {".", ".."} or "/" in name:
        raise PermanentError(f"bundle file name {name[:80]!r} is not a single key segment")
    version = sha256[:VERSION_LENGTH]
    room = min(SEGMENT_MAX_BYTES, KEY_MAX_BYTES - utf8_len(directory) - len(version) - 2)
    if room < STEM_MIN + EXTENSION_MAX:
        raise PermanentError(f"bundle directory is {utf8_len(directory)} UTF-8 bytes: no room left for file names")
    return f"{directory}/{version}/{fit_file_name(name, room)}"
