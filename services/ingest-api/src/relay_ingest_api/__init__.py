"""ingest-api: the HTTP front door for orders, recipes, lookups and download links."""
