"""Use cases of the notifier: recording inbound facts, reminders, digests and deliveries."""
