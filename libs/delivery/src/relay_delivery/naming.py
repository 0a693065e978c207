"""Where a bundle file goes in an object store (S3 key, Azure blob name): ``<prefix>/<file name>``."""

from __future__ import annotations

from relay_platform.errors import PermanentError


def prefixed_object_name(prefix: str, file_name: str, *, what: str = "object name") -> str:
    """``<prefix>/<file name>`` (the bare name without a prefix); slashes around the prefix are normalised.

    Bundle names are already sanitised by the bundle-builder; this refuses anything that could still escape the
    prefix or is not printable, so a bad name fails permanently instead of landing somewhere unexpected.
    """
    if (
        not file_name
        or file_name in {".", ".."}
        or "/" in file_name
        or "\\" in file_name
        or not file_name.isprintable()
    ):
        raise PermanentError(f"bundle file name {file_name!r} cannot be used as {what}")
    folder = "/".join(part for part in prefix.split("/") if part)
    return f"{folder}/{file_name}" if folder else file_name
