"""notifier: e-mails success and failure notices for finished deliveries."""
