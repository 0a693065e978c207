"""Message models, topic names and the recipe schema shared by every Recipe Relay service."""
