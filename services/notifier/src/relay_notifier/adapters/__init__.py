"""I/O of the notifier: SMTP and the SQL record of sent notices."""
