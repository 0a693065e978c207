"""Alembic environment: runs on the connection handed over by ``relay_platform.sql.migrate`` (``SqlStore.migrate``)."""

from __future__ import annotations

from relay_association_store.adapters.tables import metadata
from relay_platform.sql import run_migrations_on_handed_connection

# The table alembic created before there were several stores; existing databases keep it.
run_migrations_on_handed_connection(metadata, version_table="alembic_version")
