"""I/O adapters of deliver-zapier."""
