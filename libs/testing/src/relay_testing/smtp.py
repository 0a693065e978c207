"""Fixture module for smtp (filled in by the work that needs it)."""
