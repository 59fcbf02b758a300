"""Change notifications: Graph subscriptions per caller webhook, signed deliveries (issue #10,
docs/triggers.md)."""
