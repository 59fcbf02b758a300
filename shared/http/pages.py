"""The few HTML pages a person sees (sign-in result pages): self-contained, nothing loaded
from elsewhere, no referrer leaked (the callback URL carried an authorization code)."""

from __future__ import annotations

from html import escape

import azure.functions as func

from shared.http.correlation import HEADER as CORRELATION_HEADER

_SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
line-height:1.5}}code{{background:#f2f2f2;padding:.15rem .35rem;border-radius:.25rem;
word-break:break-all}}.muted{{color:#666;font-size:.9rem}}</style></head>
<body><h1>{title}</h1>{body}
<p class="muted">Reference: <code>{correlation_id}</code></p></body></html>"""


def html_page(
    title: str,
    body_html: str,
    correlation_id: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> func.HttpResponse:
    """`body_html` must already be escaped (use `escape` for every dynamic value)."""
    html = _TEMPLATE.format(
        title=escape(title), body=body_html, correlation_id=escape(correlation_id)
    )
    return func.HttpResponse(
        body=html,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={**_SECURITY_HEADERS, CORRELATION_HEADER: correlation_id, **(headers or {})},
    )


def wants_json(req: func.HttpRequest) -> bool:
    accept = (req.headers.get("accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept
