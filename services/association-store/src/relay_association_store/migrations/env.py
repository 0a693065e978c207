"""Alembic environment: runs on the connection handed over by ``SqlStore.migrate()``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from relay_association_store.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise TypeError("run migrations through SqlStore.migrate() (the service does this at start-up)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
