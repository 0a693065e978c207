"""Alembic migrations of the notifier's database, run at start-up (``upgrade head``)."""
