"""Keep secrets out of outcome messages and logs: redact every resolved secret value from a text."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

from relay_platform.errors import PermanentError
from relay_platform.tenants import IntegrationBase, LiteralOrSecret, SecretRef

REDACTED = "***"
# Shorter values would redact ordinary words; secrets that short are refused by any real service anyway.
_MIN_SECRET_LEN = 4
# Multi-line secrets (private keys) may surface a line at a time in an error text.
_MIN_LINE_LEN = 16


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


class Scrubber:
    """Replaces known secret values (and long lines of multi-line secrets) with ``***``."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        needles: set[str] = set()
        for secret in secrets:
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not raw or len(raw) < _MIN_SECRET_LEN:
                continue
            needles.add(raw)
            needles.update(line.strip() for line in raw.splitlines() if len(line.strip()) >= _MIN_LINE_LEN)
        # Longest first, so a secret containing another is redacted whole.
        self._needles = sorted(needles, key=len, reverse=True)

    def with_secrets(self, secrets: Iterable[str | SecretStr | None]) -> Scrubber:
        """A scrubber that also knows ``secrets``."""
        return Scrubber([*self._needles, *secrets])

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text
