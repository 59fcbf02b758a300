"""Browsable API docs: Swagger UI over /api/openapi.json, its files served from the Python
package that ships them (swagger-ui-bundle-v2, in requirements.txt), never from a CDN.

Anonymous like the OpenAPI document itself; API_DOCS_ENABLED=false answers 404 instead.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import PurePosixPath

import azure.functions as func

from shared.errors import NotFound
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security

api = ApiBlueprint("system")

# What the page may load: its own scripts and styles (Swagger UI sets inline style
# attributes, hence 'unsafe-inline' for styles only), the document from this origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Served files: Swagger UI's two, and our starter. Anything else is 404 (no path walking).
_ASSETS = {
    "swagger-ui.css": ("swagger", "text/css"),
    "swagger-ui-bundle.js": ("swagger", "text/javascript"),
    "docs.js": ("ours", "text/javascript"),
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outlook Integration API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<noscript><p>This viewer needs JavaScript. The API's description is at
<a href="openapi.json">openapi.json</a>.</p></noscript>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/docs.js"></script></body></html>"""


def _enabled(request: ApiRequest) -> None:
    if not request.services.settings.API_DOCS_ENABLED:
        raise NotFound("The API docs are turned off here (API_DOCS_ENABLED).")


@cache
def _asset(name: str) -> bytes:
    origin, _ = _ASSETS[name]
    if origin == "ours":
        return (files("shared.http") / "static" / name).read_bytes()
    # Imported here: the package is only needed once someone opens the docs.
    from swagger_ui_bundle import swagger_ui_path

    content: bytes = (swagger_ui_path / name).read_bytes()
    return content


@api.route(
    "docs",
    methods=("GET",),
    operation_id="api_docs",
    summary="Browsable API docs (Swagger UI over openapi.json).",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("The docs page", media_type="text/html")},
    errors=(NotFound,),
)
async def docs_page(request: ApiRequest) -> func.HttpResponse:
    _enabled(request)
    return func.HttpResponse(
        body=_PAGE,
        mimetype="text/html",
        charset="utf-8",
        headers={**_HEADERS, "Cache-Control": "no-cache"},
    )


@api.route(
    "docs/assets/{file}",
    methods=("GET",),
    operation_id="api_docs_asset",
    summary="A file of the API docs viewer (Swagger UI's script and style, our starter).",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("The file", media_type="application/octet-stream")},
    errors=(NotFound,),
)
async def docs_asset(request: ApiRequest) -> func.HttpResponse:
    _enabled(request)
    name = PurePosixPath(request.route("file")).name
    if name != request.route("file") or name not in _ASSETS:
        raise NotFound("No such file.")
    return func.HttpResponse(
        body=_asset(name),
        mimetype=_ASSETS[name][1],
        charset="utf-8",
        # The files change only with a deploy (a new package version).
        headers={**_HEADERS, "Cache-Control": "public, max-age=3600"},
    )
