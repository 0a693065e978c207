"""Names and keys bounded in UTF-8 bytes: one deterministic shortening rule for every file name and object key."""

from __future__ import annotations

import hashlib

SEGMENT_MAX_BYTES = 255  # one file or directory name (ext4, XFS, APFS, NTFS via SFTP...)
KEY_MAX_BYTES = 1024  # a whole S3 key; also bounds an Azure blob name (1,024 characters)
HASH_LENGTH = 8  # hex digits of the suffix a shortened name ends with
_SUFFIX_BYTES = 1 + HASH_LENGTH  # "~" + hash
EXTENSION_MAX_BYTES = 16  # a longer "extension" is just part of the name


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (a lone surrogate counts as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def short_hash(text: str) -> str:
    """``HASH_LENGTH`` hex digits of SHA-256 over ``text``: stable across processes and versions."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]


def fit_utf8(text: str, max_bytes: int, *, identity: str | None = None) -> str:
    """``text`` itself if it fits in ``max_bytes`` UTF-8 bytes; otherwise its longest prefix ending at a character
    boundary that leaves room for ``~<short_hash(text)>``.

    Deterministic (a resend gets the same name) and, thanks to the hash, two long texts that share their first
    ``max_bytes`` bytes still get different names. ``identity``, when ``text`` is a cleaned-up rendering of some
    original, is what the hash is taken of; unless it equals ``text``, the suffix is then added even if ``text``
    fits, so two originals that clean up alike stay apart.
    """
    if max_bytes <= _SUFFIX_BYTES:
        raise ValueError(f"cannot fit a name into {max_bytes} bytes")
    original = text if identity is None else identity
    if original == text and utf8_len(text) <= max_bytes:
        return text
    room = max_bytes - _SUFFIX_BYTES
    head = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")  # drops a cut character
    return f"{head}~{short_hash(original)}"


def fit_file_name(name: str, max_bytes: int) -> str:
    """Like ``fit_utf8`` but a short ``.extension`` survives the shortening (``long…~1a2b3c4d.pdf``)."""
    if utf8_len(name) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    tail = f".{extension}"
    room = max_bytes - utf8_len(tail)
    if not dot or not stem or utf8_len(extension) > EXTENSION_MAX_BYTES or room <= 2 * _SUFFIX_BYTES:
        return fit_utf8(name, max_bytes)
    return f"{fit_utf8(stem, room)}{tail}"
