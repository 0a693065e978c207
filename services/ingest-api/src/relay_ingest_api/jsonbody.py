"""Strict JSON for request bodies: what ``json`` would accept but no consumer could store or even encode
(``NaN``, ``1e400``, integers past 64 bits, lone surrogates) is refused by JSON pointer, never echoed."""

from __future__ import annotations

import json
import math
from contextvars import ContextVar

from relay_contracts.recipe import json_pointer
from relay_contracts.types import has_lone_surrogate
from relay_ingest_api.domain import MAX_BODY_PROBLEMS, InvalidInputError
from relay_ingest_api.schemas import Problem


class _Unusable:
    """Stands in, while parsing, for a number JSON cannot carry (``NaN``, ``1e400``, an integer past 64 bits)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_NON_FINITE = _Unusable("must be a finite number (NaN and Infinity are not JSON numbers)")
_HUGE_INT = _Unusable("must be an integer from -2^63 to 2^63-1")
_SURROGATE = "holds a lone surrogate (\\ud800-\\udfff alone is not Unicode text)"
_BAD_KEY = _Unusable(f"its key {_SURROGATE}")
_INT64_DIGITS = 19


# Set by the parse hooks when they put a marker in; a ContextVar, so concurrent parses (threads) keep apart.
_MARKED: ContextVar[bool] = ContextVar("unusable_json_values", default=False)


def _non_finite(_text: str) -> _Unusable:
    _MARKED.set(True)
    return _NON_FINITE


def _finite_float(text: str) -> float | _Unusable:
    value = float(text)
    return value if math.isfinite(value) else _non_finite(text)


def _int64(text: str) -> int | _Unusable:
    if len(text.lstrip("-")) <= _INT64_DIGITS:
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    _MARKED.set(True)
    return _HUGE_INT


# Built once (json.loads with hooks would build a decoder per call). parse_float sees only numbers with a fraction
# or an exponent, so integers keep the C fast path; the second decoder, for the rare retry, checks them too.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_non_finite)
_DECODER_MARKING_INTS = json.JSONDecoder(parse_float=_finite_float, parse_constant=_non_finite, parse_int=_int64)


def _unusable_values(document: object) -> list[Problem]:
    """Markers and lone surrogates (in values and keys) by JSON pointer, at most MAX_BODY_PROBLEMS."""
    problems: list[Problem] = []
    stack: list[tuple[object, tuple[str | int, ...]]] = [(document, ())]
    while stack and len(problems) < MAX_BODY_PROBLEMS:
        value, path = stack.pop()
        if isinstance(value, _Unusable):
            problems.append(Problem(pointer=json_pointer(path), message=value.message))
        elif isinstance(value, str):
            if has_lone_surrogate(value):
                problems.append(Problem(pointer=json_pointer(path), message=_SURROGATE))
        elif isinstance(value, list):
            stack.extend((value[i], (*path, i)) for i in range(len(value) - 1, -1, -1))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                # A bad key is stacked like a value, so problems stay in document order.
                stack.append((_BAD_KEY if has_lone_surrogate(key) else item, (*path, key)))
    return problems


def _may_hold_surrogate_escapes(raw: bytes) -> bool:
    # A one-byte search is memchr-fast; most bodies hold no backslash at all.
    return b"\\" in raw and (b"\\ud" in raw or b"\\uD" in raw)


def _encodes(document: object) -> bool:
    try:
        json.dumps(document, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def parse_json(raw: bytes) -> object:
    """The request body as JSON; a malformed one becomes a 400 that does not echo the input.

    Strict UTF-8 (a leading byte-order mark is ignored, as RFC 8259 allows). ``NaN``, ``Infinity``, numbers that
    overflow a double and integers of more than 4300 digits are refused by JSON pointer, and so are lone surrogates
    (``"\\ud800"``) anywhere: no consumer could store or even encode them.
    """
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise InvalidInputError("malformed_json", "request body is not UTF-8 encoded JSON") from error
    _MARKED.set(False)
    try:
        try:
            document = _DECODER.decode(text)
        except json.JSONDecodeError:
            raise
        except ValueError:
            # int() refuses over 4300 digits (CVE-2020-10735) with a plain ValueError: parse again, marking them.
            document = _DECODER_MARKING_INTS.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            "malformed_json", f"request body is not valid JSON: {error.msg} at line {error.lineno}"
        ) from error
    except RecursionError as error:
        raise InvalidInputError("malformed_json", "request body is nested too deeply") from error
    # Only a \ud800-\udfff escape makes a lone surrogate (raw surrogate bytes are not UTF-8): most bodies skip the walk,
    # and escaped pairs (emoji from ensure_ascii clients) pass a C-speed encode instead of the Python walk.
    if _MARKED.get() or (_may_hold_surrogate_escapes(raw) and not _encodes(document)):
        problems = _unusable_values(document)
        if problems:
            raise InvalidInputError("invalid_json_value", f"{len(problems)} value(s) JSON cannot carry", problems)
    return document
