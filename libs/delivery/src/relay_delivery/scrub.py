"""Keep secrets out of outcome messages and logs: redact every resolved secret value, and every credential
recognisable by its shape, from a text."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import SecretStr

from relay_platform.errors import PermanentError
from relay_platform.redact import REDACTED, redact_secrets
from relay_platform.tenants import IntegrationBase, LiteralOrSecret, SecretRef

# Shorter values would redact ordinary words; secrets that short are refused by any real service anyway.
_MIN_SECRET_LEN = 4
# Multi-line secrets (private keys) may surface a line at a time in an error text.
_MIN_LINE_LEN = 16
# The parts of a connection string that are credentials (AccountKey, SharedAccessKey/-Signature, Password…).
_SECRET_PART_NAMES = ("key", "signature", "password", "pwd", "secret", "token")


def integration_secrets(integration: IntegrationBase) -> list[str]:
    """The resolved values of every secret setting of ``integration`` (unset references are skipped).

    ``MaybeSecretSetting`` values count as secrets even when written literally: a Zapier hook URL is a
    bearer credential.
    """
    values: list[str] = []
    for name in type(integration).model_fields:
        value = getattr(integration, name)
        if isinstance(value, SecretRef | LiteralOrSecret):
            try:
                values.append(value.resolve().get_secret_value())
            except PermanentError:
                continue
    return values


def _url_forms(url: str) -> set[str]:
    """How a URL secret (a Zapier hook) may come back in an error text: scheme and host in any case (the pattern
    is case-insensitive), with or without its trailing slash, percent-decoded or -encoded, or only its path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    if not parts.scheme or not parts.netloc:
        return set()
    whole = {url, unquote(url)}
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    # Too short a path ("/", "/hook") is no secret on its own and would redact ordinary text.
    if len(parts.path.strip("/")) >= _MIN_LINE_LEN // 2:
        whole |= {path, unquote(path)}
    forms: set[str] = set()
    for form in whole:
        for variant in (form.rstrip("/"), form.rstrip("/") + "/"):
            forms |= {variant, quote(variant, safe=":/?&=@"), quote(variant, safe="")}
    return forms


def _connection_string_values(secret: str) -> set[str]:
    # `…;AccountKey=…;…`: a key may surface on its own, e.g. inside an SDK's message about a signature.
    values = set()
    for part in secret.split(";"):
        name, equals, value = part.partition("=")
        if equals and len(value) >= _MIN_LINE_LEN and any(word in name.lower() for word in _SECRET_PART_NAMES):
            values |= {value, quote(value, safe="")}
    return values


@functools.lru_cache(maxsize=256)
def _compile(exact: tuple[str, ...], folded: tuple[str, ...]) -> re.Pattern[str] | None:
    # Longest first, so a secret containing another is redacted whole.
    needles = [(n, re.escape(n)) for n in exact] + [(n, f"(?i:{re.escape(n)})") for n in folded]
    needles.sort(key=lambda needle: len(needle[0]), reverse=True)
    return re.compile("|".join(pattern for _, pattern in needles)) if needles else None


class Scrubber:
    """Replaces known secret values with ``***`` (with the long lines of multi-line secrets, the URL-encoded forms,
    and a URL secret's case-folded, re-encoded and path-only forms), then every credential ``redact_secrets``
    recognises by its shape (``sig=``, ``AccountKey=``, ``Bearer …``, ``user:pass@``…)."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        raws: list[str] = []
        exact: set[str] = set()
        folded: set[str] = set()
        for secret in secrets:
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not raw or len(raw) < _MIN_SECRET_LEN:
                continue
            raws.append(raw)
            exact |= {raw, quote(raw, safe=""), quote_plus(raw, safe="")}
            exact.update(line.strip() for line in raw.splitlines() if len(line.strip()) >= _MIN_LINE_LEN)
            exact |= _connection_string_values(raw)
            folded |= _url_forms(raw.strip())
        self._secrets = tuple(raws)
        self._pattern = _compile(tuple(sorted(exact)), tuple(sorted(folded)))

    def with_secrets(self, secrets: Iterable[str | SecretStr | None]) -> Scrubber:
        """A scrubber that also knows ``secrets``."""
        return Scrubber([*self._secrets, *secrets])

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return redact_secrets(text)
