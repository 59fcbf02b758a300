"""Connections: a person's grant to one mailbox, as the API's callers see it."""
