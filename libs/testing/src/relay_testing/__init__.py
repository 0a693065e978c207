"""Real servers for tests and the embedded stack, started on free loopback ports and stopped by PID."""
