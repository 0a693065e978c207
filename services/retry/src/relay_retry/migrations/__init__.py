"""Alembic migrations of the retry schedule's database, run at start-up (``relay_platform.sql.migrate``)."""
