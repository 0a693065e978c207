"""The one error taxonomy: transient (try again later) versus permanent (fail now, dead-letter or notify)."""

from __future__ import annotations


class RelayError(Exception):
    """Root of every classified error. ``str(error)`` must never contain a secret or PII."""


class TransientError(RelayError):
    """The same input may succeed later: network blips, 5xx, throttling, a database restarting."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(RelayError):
    """The same input will fail again: bad data, wrong credentials, missing bucket, unknown host key."""


def error_class_name(error: BaseException) -> str:
    """A stable, secret-free label for an error, for outcomes and logs."""
    return type(error).__name__
