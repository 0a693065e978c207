"""Fixture module for seaweedfs (filled in by the work that needs it)."""
