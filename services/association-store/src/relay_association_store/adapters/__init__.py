"""I/O adapters: the SQL repository and the internal query HTTP server."""
