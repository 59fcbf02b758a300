"""The queue message the timer fans out: one batch of the connections of one run.

Wire format (the Functions host's default `messageEncoding`, base64, around compact JSON):
`{"v": 2, "run": "<32 hex>", "n": <batch index>,
  "items": [["<connection id>", <hint due time, ms since the epoch>, <attempts>]]}`.
Only keys travel, never tokens or mailbox names; the worker re-reads everything else, so a
message delivered twice, late, or after someone else did the work changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.store.connections import is_connection_id

VERSION = 2
MAX_ITEMS = 1000  # well below the 64 KiB queue message limit (at most ~90 bytes per item)
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_ATTEMPTS = 1000
_MAX_MILLIS = 253402300799999  # 9999-12-31T23:59:59.999Z, the last time a datetime holds


class MalformedBatch(ValueError):
    """The message is not a work batch this version understands (a stable reason code)."""


@dataclass(frozen=True)
class WorkItem:
    connection_id: str
    at: datetime  # the due time of the hint that named it
    attempts: int = 0  # consecutive transient failures so far


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


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
            "items": [[i.connection_id, _millis(i.at), i.attempts] for i in self.items],
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
                or len(item) != 3
                or not isinstance(item[0], str)
                or not is_connection_id(item[0])
                or not _is_count(item[1], _MAX_MILLIS)
                or not _is_count(item[2], _MAX_ATTEMPTS)
            ):
                raise MalformedBatch("bad_item")
            at = datetime.fromtimestamp(item[1] / 1000, UTC)
            parsed.append(WorkItem(item[0], at, item[2]))
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


def _is_count(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit
