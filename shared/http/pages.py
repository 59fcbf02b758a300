"""The few HTML pages a person sees (sign-in result pages): self-contained, nothing loaded
from elsewhere, no referrer leaked (the callback URL carried an authorization code)."""

from __future__ import annotations

import base64
import hashlib
from html import escape

import azure.functions as func

from shared.http.correlation import HEADER as CORRELATION_HEADER

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action {form_action}; frame-ancestors 'none'{script}"
)
_SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

# The success page's copy button: added by this script, so a page without JavaScript shows
# the id alone. The CSP allows exactly this script by its hash (no 'unsafe-inline').
COPY_SCRIPT = """(function () {
  var code = document.getElementById("connection-id");
  if (!code) { return; }
  var button = document.createElement("button");
  button.type = "button";
  button.id = "copy-connection-id";
  button.textContent = "Copy";
  button.addEventListener("click", function () {
    function done(text) { button.textContent = text; }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code.textContent).then(
        function () { done("Copied"); },
        function () { done("Select the id and copy it"); });
    } else {
      done("Select the id and copy it");
    }
  });
  code.insertAdjacentElement("afterend", button);
})();"""


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
line-height:1.5}}code{{background:#f2f2f2;padding:.15rem .35rem;border-radius:.25rem;
word-break:break-all}}.muted{{color:#666;font-size:.9rem}}button{{margin-left:.5rem}}
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.35rem;
border-bottom:1px solid #ddd;vertical-align:top}}@media (max-width:36rem){{thead{{display:none}}
tr,td{{display:block}}tr{{border-bottom:1px solid #999;padding:.5rem 0}}td{{border:0}}
td::before{{content:attr(data-label) ": ";font-weight:600}}}}</style></head>
<body><h1>{title}</h1>{body}
<p class="muted">Reference: <code>{correlation_id}</code></p>{script}</body></html>"""


def html_page(
    title: str,
    body_html: str,
    correlation_id: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    script: str | None = None,
    form_action: str = "'none'",
) -> func.HttpResponse:
    """`body_html` must already be escaped (use `escape` for every dynamic value). `script`
    is a constant inline script, allowed by its hash; `form_action` the CSP source list the
    page's forms may post to ('self' for pages with forms)."""
    html = _TEMPLATE.format(
        title=escape(title),
        body=body_html,
        correlation_id=escape(correlation_id),
        script=f"<script>{script}</script>" if script else "",
    )
    csp = _CSP.format(
        form_action=form_action,
        script=f"; script-src {script_hash(script)}" if script else "",
    )
    return func.HttpResponse(
        body=html,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={
            **_SECURITY_HEADERS,
            "Content-Security-Policy": csp,
            CORRELATION_HEADER: correlation_id,
            **(headers or {}),
        },
    )


def wants_json(req: func.HttpRequest) -> bool:
    accept = (req.headers.get("accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept
