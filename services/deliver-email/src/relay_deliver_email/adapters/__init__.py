"""I/O adapters of deliver-email."""
