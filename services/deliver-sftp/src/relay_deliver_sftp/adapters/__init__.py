"""I/O adapters of deliver-sftp."""
