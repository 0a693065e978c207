"""Alembic environment: runs on the connection ``relay_platform.sql.migrate`` hands over at start-up."""

from __future__ import annotations

from relay_platform.sql import run_migrations_on_handed_connection
from relay_retry.adapters.tables import metadata

run_migrations_on_handed_connection(metadata, version_table="alembic_version_retry")
