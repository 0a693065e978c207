"""Fixture module for azurite (filled in by the work that needs it)."""
