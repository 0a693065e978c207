"""Secrets services share with each other (link signing key, internal API token): random, long, never a placeholder."""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from pydantic import SecretStr

MIN_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Published values (old defaults, documentation stand-ins): anyone can read them, so they are refused.
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "placeholder", "dev-only")


def secret_problem(raw: str) -> str | None:
    """Why ``raw`` cannot serve as a shared secret (never echoing it), or ``None`` when it can."""
    if len(raw) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} random characters; generate one with: {GENERATE_HINT}"
    lowered = raw.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS) or len(set(raw)) < 8:
        return f"is a placeholder, not a secret; generate one with: {GENERATE_HINT}"
    return None


def check_shared_secret(value: SecretStr) -> SecretStr:
    """``value`` if it can serve as a shared secret, else ``ValueError`` saying why (for settings validators)."""
    problem = secret_problem(value.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return value


def new_shared_secret() -> str:
    """A fresh random secret that passes ``check_shared_secret`` (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``): reachable only from this machine.
    Anything else (``0.0.0.0``, a name, a LAN address) may be reachable from the network."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is a loopback address (see ``is_loopback_host``)."""
    return is_loopback_host(urlsplit(url).hostname)
