"""SQL schema (SQLAlchemy Core); the alembic migrations under ``relay_notifier/migrations`` create it."""

from __future__ import annotations

from sqlalchemy import Column, Float, MetaData, String, Table

metadata = MetaData()

sent_notices = Table(
    "sent_notices",
    metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("delivery_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sent_at", Float, nullable=False),
)
