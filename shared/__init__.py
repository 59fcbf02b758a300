"""The Outlook Integration API application package (layers described in docs/architecture.md)."""
