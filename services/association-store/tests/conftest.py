"""Fixtures of the association-store tests; makes ``association_store_factories`` importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from relay_platform.tenants import TenantsConfig, load_tenants

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from association_store_factories import TENANTS_FILE  # noqa: E402


@pytest.fixture(scope="session")
def tenants() -> TenantsConfig:
    return load_tenants(TENANTS_FILE)
