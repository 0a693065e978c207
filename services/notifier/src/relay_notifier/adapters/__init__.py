"""I/O of the notifier: the SQL record of sent notices (``sent``, tables in ``tables``). Mail goes through the
platform's SMTP client (``relay_platform.smtp``), opened in ``main``."""
