"""Reading `application/x-www-form-urlencoded` bodies (the OAuth endpoints' only body type).

Parsed here rather than with Starlette's form parser, which needs python-multipart.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

# An OAuth form is a few kilobytes; anything far larger is not a token request.
MAX_FORM_BYTES = 64 * 1024


class FormTooLarge(Exception):
    pass


async def read_form(request: Request) -> dict[str, str] | None:
    """The form fields, or None when the body is not a urlencoded form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge()
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
