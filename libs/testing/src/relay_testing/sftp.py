"""Fixture module for sftp (filled in by the work that needs it)."""
