"""retry: keeps the back-off schedule of failed deliveries and re-requests them when due."""
