"""Alembic migrations of the association store's database, run at start-up (``upgrade head``)."""
