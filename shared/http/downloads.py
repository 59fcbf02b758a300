"""Headers for handing a file to a browser or a flow: `Content-Disposition` and `Content-Type`
built from an attachment's name and type, which whoever sent the mail chose.

Why sanitised here: a header value holding CR, LF or another control character is refused by
the host (a 500 for the caller) or, worse, splits the header; a quote or backslash would end
the quoted filename early. The exact name still travels, percent-encoded, in `filename*`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Visible ASCII except the quote and backslash that would end or escape the quoted string.
_UNSAFE_IN_QUOTED_NAME = re.compile(r'[^\x20-\x7e]|["\\]')
# `type/subtype` with optional parameters, visible ASCII only (RFC 9110 §8.3.1).
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?$")


def content_disposition(filename: str | None, fallback: str = "attachment") -> str:
    """`attachment; filename="<ASCII stand-in>"; filename*=UTF-8''<exact name>` (RFC 6266,
    RFC 8187): every character of the stand-in that is not safe becomes `_`."""
    name = filename or fallback
    stand_in = _UNSAFE_IN_QUOTED_NAME.sub("_", name)
    return f"attachment; filename=\"{stand_in}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_media_type(content_type: str | None) -> str:
    """The attachment's declared type if it is a well-formed media type, else
    `application/octet-stream` (served with `nosniff`, so nothing is guessed from the bytes)."""
    if content_type and len(content_type) <= 255 and _MEDIA_TYPE.match(content_type):
        return content_type
    return "application/octet-stream"
