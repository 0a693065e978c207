"""Runtime plumbing shared by every Recipe Relay service."""
