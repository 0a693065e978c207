"""I/O of deliver-email: none of its own. Mail goes through the platform's SMTP client (``relay_platform.smtp``),
files through the artifact store and ``relay_delivery.DownloadLinks``; ``main`` opens them."""
