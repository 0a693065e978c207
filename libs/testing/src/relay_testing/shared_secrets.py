"""Throwaway shared secrets for tests: fresh per test process, strong enough to pass the services' checks."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from relay_platform.links import LinkSettings
from relay_platform.shared_secret import new_shared_secret

LINK_SIGNING_KEY = new_shared_secret()
ASSOCIATION_STORE_TOKEN = new_shared_secret()


def link_settings(**fields: Any) -> LinkSettings:
    """``LinkSettings`` with this process's test signing key; ``fields`` set the rest (``public_base_url``...)."""
    return LinkSettings(signing_key=SecretStr(LINK_SIGNING_KEY), **fields)


def secrets_env() -> dict[str, str]:
    """The shared-secret variables a service process started by a test needs (add them to its environment)."""
    return {
        "LINKS_SIGNING_KEY": LINK_SIGNING_KEY,
        "ASSOCIATION_STORE_API_TOKEN": ASSOCIATION_STORE_TOKEN,
        "INGEST_API_ASSOCIATION_STORE_TOKEN": ASSOCIATION_STORE_TOKEN,
    }
