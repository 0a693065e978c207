"""Redact credentials recognisable by their shape (query parameters, connection strings, headers, URLs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

REDACTED = "***"

# A parameter whose name ends like one of these carries a credential wherever it appears (`apikey=`,
# `X-Amz-Signature=`, `client_secret=`, `db_password=`, `access_token=`).
_NAME_ENDINGS = (
    r"api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|account[_-]?key|subscription[_-]?key"
    r"|token|secret|password|passwd|pwd|signature|sig|credentials?"
)
_NAME_NEEDLES = ("key", "token", "secret", "passw", "pwd", "sig", "credential")
# A value stops where a query value cannot go on in a log line, and never takes a backslash or a quote: a JSON
# log line stays valid JSON.
_VALUE = r"""(?:(?!%26)[^\s&"'\\<>;,)\]}|`])+"""
_QUOTE = r"""\\?["']"""


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern (lowercase, matched against the lowercased text) whose group ``value`` is replaced.

    It runs only on a text holding a needle of each of ``gates``: ``in`` is many times faster than any regular
    expression, and most log lines hold none. ``keep`` vetoes a match by its value as written (original case).
    """

    gates: tuple[tuple[str, ...], ...]
    pattern: re.Pattern[str]
    folding: re.Pattern[str]  # the same, case-insensitive, for the rare text whose lowercase is longer
    keep: Callable[[str], bool] | None = field(default=None)

    def applies_to(self, lowered: str) -> bool:
        for gate in self.gates:
            for needle in gate:
                if needle in lowered:
                    break
            else:
                return False
        return True


def _rule(gates: tuple[tuple[str, ...], ...], pattern: str, keep: Callable[[str], bool] | None = None) -> _Rule:
    return _Rule(gates, re.compile(pattern), re.compile(pattern, re.IGNORECASE), keep)


def _is_lowercase_word(value: str) -> bool:
    return value.isalpha() and value.islower()


# In order: where two rules could claim the same text, the one taking the wider value goes first.
_RULES = (
    # PEM private keys, whole (an unterminated one to the end of the text).
    _rule(
        (("private key-----",),),
        r"(?P<value>-----begin [a-z ]*private key-----[\s\S]*?(?:-----end [a-z ]*private key-----|\Z))",
    ),
    # Connection strings: the value runs to `;` (a SAS holds `&` and `=`). Password/Pwd only after a `;`, so a
    # query string's `password=` keeps its `&`-bounded value (parameters, below).
    _rule(
        (("accountkey", "sharedaccess", "password", "pwd"), ("=",)),
        r"(?:(?<![\w-])(?:accountkey|sharedaccesssignature|sharedaccesskey)|(?:(?<=;)|(?<=; ))(?:password|pwd))\s*=\s*"
        r"""(?P<value>[^;\s"'\\<>]+)""",
    ),
    # Headers, raw or in a repr/JSON: `Authorization: Bearer x`, `'Authorization': 'Basic x'`. The scheme is
    # taken whole or not at all, so "Authorization: Bearer or apikey=" in a help text stays as it is.
    _rule(
        (("authorization", "api-key", "auth-token", "security-token", "subscription-key"),),
        r"(?<![\w-])(?:proxy-)?(?:authorization|x-api-key|api-key|x-auth-token|x-amz-security-token"
        rf"|ocp-apim-subscription-key)(?:\s*:\s*|{_QUOTE}\s*[:,]\s*)(?:{_QUOTE})?\s*"
        r"(?:(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256|sharedkey(?:lite)?|sharedaccesssignature)\s+)?+"
        r"""(?P<value>[^\s"'\\<>,;]{4,})""",
    ),
    # A bare credential after its scheme word; a lowercase word ("Basic authentication") is not one.
    _rule(
        (("bearer", "basic"),),
        r"(?<![\w-])(?:bearer|basic)\s+(?P<value>[\w.~+/-]{6,}=*)",
        keep=_is_lowercase_word,
    ),
    # `"password": "x"` in JSON or a dict repr (also JSON-escaped, inside a JSON log line).
    _rule(
        (_NAME_NEEDLES, (":",)),
        rf"(?:{_NAME_ENDINGS}){_QUOTE}\s*:\s*{_QUOTE}(?P<value>[^\"'\\]+)",
    ),
    # Query (or `name=value`) parameters; `key=`/`code=` are too common to count anywhere but after ? & ; #.
    _rule(
        ((*_NAME_NEEDLES, "code"), ("=", "%3d")),
        rf"(?:(?:{_NAME_ENDINGS})|(?:(?<=[?&;#])|(?<=%3f)|(?<=%26))(?:key|code))(?:=|%3d)(?!=)(?P<value>{_VALUE})",
    ),
    # The password of a URL's userinfo (`scheme://user:pass@host`), up to the authority's last `@`.
    _rule(
        (("://",), ("@",)),
        r"""(?<![\w+.-])[a-z][\w+.-]*://[^\s/?#@:"'\\<>]*:(?P<value>[^\s/?#"'\\<>]+)(?=@)""",
    ),
    # Zapier hook paths (`hooks.zapier.com/hooks/catch/<id>/<token>`), plain or percent-encoded.
    _rule(
        (("hooks",),),
        r"""(?:/|%2f)hooks(?:/|%2f)(?:catch|standard)(?:/|%2f)(?P<value>[^\s?#&"'\\<>]+)""",
    ),
)
# Every rule's first gate at once (a needle holding another one is redundant).
_FIRST = {needle for rule in _RULES for needle in rule.gates[0]}
_FIRST_NEEDLES = tuple(sorted(n for n in _FIRST if not any(other != n and other in n for other in _FIRST)))


def _splice(text: str, spans: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    done = 0
    for start, end in spans:
        parts += (text[done:start], REDACTED)
        done = end
    parts.append(text[done:])
    return "".join(parts)


def redact_secrets(text: str) -> str:
    """``text`` with every credential recognisable by its shape replaced by ``***``.

    Covers credential query parameters (``apikey=``, ``token=``, ``sig=``, ``X-Amz-Signature=``, ``password=``…,
    also ``%3D``-encoded; ``key=``/``code=`` only as query parameters), ``AccountKey=``/``SharedAccessSignature=``/
    ``SharedAccessKey=``/``Password=`` of connection strings, ``Authorization``-like headers and bare
    ``Bearer``/``Basic`` credentials, ``"password": "…"`` in JSON or a repr, the password of a URL's userinfo,
    Zapier hook paths and PEM private keys. Known secret values are the ``Scrubber``'s part (``relay_delivery``).
    Costs a few microseconds for a line without any of the words these need.
    """
    lowered = text.lower()
    for needle in _FIRST_NEEDLES:
        if needle in lowered:
            break
    else:
        return text
    # Matching the lowercased text without IGNORECASE is several times faster; its positions are the text's own
    # when lowercasing kept the length (every character then maps to exactly one).
    aligned = len(lowered) == len(text)
    for rule in _RULES:
        if not rule.applies_to(lowered):
            continue
        matches = rule.pattern.finditer(lowered) if aligned else rule.folding.finditer(text)
        spans = [match.span("value") for match in matches]
        if rule.keep is not None:
            spans = [(start, end) for start, end in spans if not rule.keep(text[start:end])]
        if spans:
            text = _splice(text, spans)
            lowered = _splice(lowered, spans) if aligned else text.lower()
    return text
