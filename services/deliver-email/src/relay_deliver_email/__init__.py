"""deliver-email: sends recipe bundles to an email integration's recipients over SMTP."""
