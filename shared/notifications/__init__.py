"""Change notifications: Graph subscriptions per caller webhook, signed deliveries
(docs/triggers.md)."""
