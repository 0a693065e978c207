"""deliver-sftp: uploads recipe bundles to an integration's SFTP directory, atomically per file."""
