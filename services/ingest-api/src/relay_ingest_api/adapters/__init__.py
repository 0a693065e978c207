"""The I/O of the ingest API: Kafka producer, association-store client."""
