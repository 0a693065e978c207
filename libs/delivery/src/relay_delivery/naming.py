"""Where a bundle file goes in an object store (S3 key, Azure blob name): ``<prefix>/<file name>``, bounded."""

from __future__ import annotations

from relay_platform.errors import PermanentError
from relay_platform.naming import KEY_MAX_BYTES, SEGMENT_MAX_BYTES, fit_file_name, utf8_len

# Azure: a blob name has at most 254 path segments (and 1,024 characters, which 1,024 UTF-8 bytes always are).
MAX_SEGMENTS = 254
# The least room a file name must keep beside the prefix: enough for a shortened name and its extension.
MIN_NAME_BYTES = 48


def prefixed_object_name(
    prefix: str,
    file_name: str,
    *,
    what: str = "object name",
    max_bytes: int = KEY_MAX_BYTES,
    max_segments: int = MAX_SEGMENTS,
) -> str:
    """``<prefix>/<file name>`` (the bare name without a prefix); slashes around the prefix are normalised.

    Within S3's and Azure's limits by default: at most ``max_bytes`` UTF-8 bytes, ``max_segments`` segments and
    255 bytes per segment. A longer file name is shortened deterministically (``relay_platform.naming``), keeping
    its extension, so a redelivery lands on the same object. A prefix that leaves no room, or a file name that could
    escape the prefix or is not printable, fails permanently instead of landing somewhere unexpected.
    """
    if (
        not file_name
        or file_name in {".", ".."}
        or "/" in file_name
        or "\\" in file_name
        or not file_name.isprintable()
    ):
        raise PermanentError(f"bundle file name {file_name!r} cannot be used as {what}")
    parts = [part for part in prefix.split("/") if part]
    folder = "/".join(parts)
    if any(utf8_len(part) > SEGMENT_MAX_BYTES for part in parts) or len(parts) >= max_segments:
        raise PermanentError(
            f"prefix {folder[:80]!r} is unusable for {what}: more than {max_segments - 1} segments "
            f"or a segment over {SEGMENT_MAX_BYTES} UTF-8 bytes"
        )
    room = min(SEGMENT_MAX_BYTES, max_bytes - (utf8_len(folder) + 1 if folder else 0))
    if room < MIN_NAME_BYTES:
        raise PermanentError(
            f"prefix {folder[:80]!r} is {utf8_len(folder)} UTF-8 bytes, too long for {what} within {max_bytes}"
        )
    name = fit_file_name(file_name, room)
    return f"{folder}/{name}" if folder else name
