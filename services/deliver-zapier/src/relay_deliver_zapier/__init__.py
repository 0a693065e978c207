"""deliver-zapier: triggers a Zapier catch hook with the bundle's order data and expiring file links."""
