"""association-store: orders <-> recipes in SQL, the delivery log, and which integrations fire."""
