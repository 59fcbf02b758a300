"""Archiving: incremental, resumable exports of whole mailboxes with a sealed manifest
(docs/archiving.md)."""
