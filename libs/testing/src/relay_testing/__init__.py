"""Test-only helpers: the pytest fixtures that start real servers (from ``relay_devservers``) once per session,
a throw-away PostgreSQL, and fresh shared secrets per test process."""
