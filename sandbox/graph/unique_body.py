"""`uniqueBody`: the part of a message's body that is new in it, without the quoted history
of the conversation below.

Exchange computes it from the conversation; the sandbox finds the first marker mail clients
put above quoted text and keeps what comes before it. A body without such a marker is unique
as a whole, as Graph answers for a message that starts a conversation.
"""

from __future__ import annotations

import re
from typing import Any

# Above quoted history in HTML: Outlook's reply header (`<div id="appendonsend">`, an `<hr>`
# and `<div id="divRplyFwdMsg">`), the sandbox's own createReply header (`<hr><div><b>From:`),
# Gmail's and Apple Mail's quote containers, and a plain blockquote.
_HTML_MARKERS = (
    re.compile(r'<div[^>]*\bid="?appendonsend', re.IGNORECASE),
    re.compile(r'(?:<hr[^>]*>\s*)?<div[^>]*\bid="?divRplyFwdMsg', re.IGNORECASE),
    re.compile(r"<hr[^>]*>\s*<div[^>]*>\s*<b>\s*From:", re.IGNORECASE),
    re.compile(r'<div[^>]*\bclass="?gmail_quote', re.IGNORECASE),
    re.compile(r"<blockquote", re.IGNORECASE),
)
# Above quoted history in plain text.
_TEXT_MARKERS = (
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}", re.IGNORECASE | re.MULTILINE),
    re.compile(r"^_{10,}\s*$", re.MULTILINE),
    re.compile(r"^From: .*\r?\n(?:Sent|Date): ", re.MULTILINE),
    re.compile(r"^On .{1,200} wrote:\s*$", re.MULTILINE),
    re.compile(r"^>", re.MULTILINE),
)
_BODY_OPEN = re.compile(r"<body[^>]*>", re.IGNORECASE)


def unique_body(body: dict[str, Any] | None) -> dict[str, Any] | None:
    if body is None:
        return None
    content = str(body.get("content") or "")
    html = str(body.get("contentType", "text")).lower() == "html"
    cut = _first_marker(content, _HTML_MARKERS if html else _TEXT_MARKERS)
    if cut is None:
        return {"contentType": body.get("contentType", "text"), "content": content}
    head = content[:cut]
    if html:
        opened = _BODY_OPEN.search(head)
        inner = head[opened.end() :] if opened else head
        return {"contentType": "html", "content": f"<html><body>{inner.rstrip()}</body></html>"}
    return {"contentType": "text", "content": head.rstrip()}


def _first_marker(content: str, markers: tuple[re.Pattern[str], ...]) -> int | None:
    found = [m.start() for pattern in markers if (m := pattern.search(content))]
    return min(found) if found else None
