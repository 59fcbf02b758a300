"""Non-HTTP function adapters (timer and queue triggers): thin handlers over the use cases."""
