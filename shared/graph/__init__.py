"""The Graph client layer: the one adapter through which mail operations reach Graph.

- client: GraphClient, GraphRequest, GraphResponse (pooled httpx client, pipeline of policies)
- retry / limiter / headers / errors: the separable policies
- paths / odata: safe request building from caller input
- cursor: signed, expiring, connection-bound paging cursors
"""

from shared.graph.client import GraphClient, GraphRequest, GraphResponse
from shared.graph.cursor import CursorCodec, cursor_codec_from_settings
from shared.graph.errors import GraphUnauthorized, error_for
from shared.graph.limiter import MailboxLimiter
from shared.graph.odata import ListQuery, MessageFilters
from shared.graph.paths import MailboxPath, folder_segment, graph_id
from shared.graph.retry import RetryPolicy

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
