"""The Graph client layer: the one adapter through which mail operations reach Graph.

- client: GraphClient, GraphRequest, GraphResponse (pooled httpx client, pipeline of policies)
- retry / limiter / headers / errors: the separable policies
- paths / odata: safe request building from caller input
- cursor: signed, expiring, connection-bound paging cursors

The names below load their module on first use (PEP 562): the HTTP layer imports
`shared.graph.odata` at start-up, and that must not bring httpx with it (cold start).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.graph.client import GraphClient, GraphRequest, GraphResponse
    from shared.graph.cursor import CursorCodec, cursor_codec_from_settings
    from shared.graph.errors import GraphUnauthorized, error_for
    from shared.graph.limiter import MailboxLimiter
    from shared.graph.odata import ListQuery, MessageFilters
    from shared.graph.paths import MailboxPath, folder_segment, graph_id
    from shared.graph.retry import RetryPolicy

_HOMES = {
    "GraphClient": "client",
    "GraphRequest": "client",
    "GraphResponse": "client",
    "CursorCodec": "cursor",
    "cursor_codec_from_settings": "cursor",
    "GraphUnauthorized": "errors",
    "error_for": "errors",
    "MailboxLimiter": "limiter",
    "ListQuery": "odata",
    "MessageFilters": "odata",
    "MailboxPath": "paths",
    "folder_segment": "paths",
    "graph_id": "paths",
    "RetryPolicy": "retry",
}

__all__ = [
    "CursorCodec",
    "GraphClient",
    "GraphRequest",
    "GraphResponse",
    "GraphUnauthorized",
    "ListQuery",
    "MailboxLimiter",
    "MailboxPath",
    "MessageFilters",
    "RetryPolicy",
    "cursor_codec_from_settings",
    "error_for",
    "folder_segment",
    "graph_id",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
