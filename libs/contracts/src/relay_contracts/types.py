"""Field types every message and API body shares: IDs safe to store and name files by, instants safe to convert."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

# UTC years every service can compute with: year 9999 leaves no room for a retry delay or an offset to be added.
MIN_UTC_YEAR = 1
MAX_UTC_YEAR = 9998

# C0 controls, DEL, C1 controls, lone surrogates (a str can hold them, UTF-8 cannot) and U+FFFD-U+FFFF (the mark a
# decoder leaves for bytes that were not UTF-8, and two non-characters): none belongs in an ID.
_NOT_IN_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd-\uffff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_ID_CHARS = r"\u0000-\u001f\u007f-\u009f\ufffd-\uffff"
ID_PATTERN = rf"^[^{_ID_CHARS}]*[^\s{_ID_CHARS}][^{_ID_CHARS}]*$"
"""The ``IdText`` rule as a JSON Schema pattern, for documents (the check is ``check_id_text``; surrogates are left
out of the pattern because UTF-8 cannot carry them anyway, and some regex engines refuse them)."""


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (from a ``\\ud800`` JSON escape): it cannot be encoded as UTF-8."""
    return _LONE_SURROGATE.search(text) is not None


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate shown as U+FFFD, so it can be sent back (in a JSON pointer, say)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def check_id_text(value: str) -> str:
    """``value`` when it is usable as an ID: no control characters, lone surrogates or U+FFFD, not only blanks."""
    if _NOT_IN_ID.search(value) is not None:
        raise ValueError("must not contain control characters, lone surrogates or U+FFFD")
    if value and value.isspace():
        raise ValueError("must not be only whitespace")
    return value


def check_utc_instant(value: datetime) -> datetime:
    """``value`` (unchanged) when it is aware and falls in years 1-9998 once converted to UTC."""
    if value.utcoffset() is None:
        raise ValueError("must have a time zone")
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = 0
    if not MIN_UTC_YEAR <= year <= MAX_UTC_YEAR:
        raise ValueError(f"must fall in years {MIN_UTC_YEAR:04d}-{MAX_UTC_YEAR} in UTC")
    return value


IdText = Annotated[str, AfterValidator(check_id_text)]
"""A string ID (lengths stay with each field): refused with control characters, lone surrogates, U+FFFD, or blank."""

UtcInstant = Annotated[AwareDatetime, AfterValidator(check_utc_instant)]
"""An aware datetime that every service can convert to UTC, store and add a delay to without overflowing."""
