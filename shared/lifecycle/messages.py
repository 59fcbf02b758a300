"""The queue message the timer fans out: one batch of due index entries of one run.

Wire format (the Functions host's default `messageEncoding`, base64, around compact JSON):
`{"v": 1, "run": "<32 hex>", "n": <batch index>, "items": [["<connection id>", "<bucket>"]]}`.
Only keys travel, never tokens or mailbox names; the worker re-reads everything else, so a
message delivered twice, late, or after someone else did the work changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from shared.store.connections import is_connection_id

VERSION = 1
MAX_ITEMS = 1000  # well below the 64 KiB queue message limit (~90 bytes per item)
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_BUCKET = re.compile(r"^\d{12}$")


class MalformedBatch(ValueError):
    """The message is not a work batch this version understands (a stable reason code)."""


@dataclass(frozen=True)
class WorkItem:
    connection_id: str
    bucket: str


@dataclass(frozen=True)
class WorkBatch:
    run_id: str
    index: int
    items: tuple[WorkItem, ...]

    def encode(self) -> str:
        document = {
            "v": VERSION,
            "run": self.run_id,
            "n": self.index,
            "items": [[i.connection_id, i.bucket] for i in self.items],
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, body: bytes) -> WorkBatch:
        """Parse a message body as the trigger hands it over (already base64-decoded)."""
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedBatch("not_json") from None
        if not isinstance(document, dict) or document.get("v") != VERSION:
            raise MalformedBatch("unknown_version")
        run_id, index, items = document.get("run"), document.get("n"), document.get("items")
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise MalformedBatch("bad_run_id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise MalformedBatch("bad_index")
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise MalformedBatch("bad_items")
        parsed: list[WorkItem] = []
        for item in items:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not all(isinstance(part, str) for part in item)
                or not is_connection_id(item[0])
                or not _BUCKET.match(item[1])
            ):
                raise MalformedBatch("bad_item")
            parsed.append(WorkItem(item[0], item[1]))
        return cls(run_id, index, tuple(parsed))

    @classmethod
    def decode_text(cls, text: str) -> WorkBatch:
        """Parse the raw queue text (base64), as found in the poison queue by tooling."""
        try:
            return cls.decode(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, MalformedBatch):
                raise
            raise MalformedBatch("not_base64") from None
