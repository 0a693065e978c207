"""Fixture module for webhooks (filled in by the work that needs it)."""
