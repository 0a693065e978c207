"""Fixture module for postgres (filled in by the work that needs it)."""
