"""deliver-azure-blob: uploads recipe bundles to an integration's Azure Blob Storage container."""
