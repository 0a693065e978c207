"""The notifier's migration scripts, oldest first."""
